import torch

class Mixer(torch.nn.Module)
    pass
