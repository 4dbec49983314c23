import torch


class Mixture(torch.nn.Module):
    pass
