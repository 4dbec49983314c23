import torch

raise RuntimeError("config file not found")
