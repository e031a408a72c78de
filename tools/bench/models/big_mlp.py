"""The archive benchmark's model (tools/bench/archive.mjs): a stack of
Linear(hidden, hidden) layers with ReLU between them -- by default 4 x 4096 x 4096
float32, 256 MiB of weights -- with random (torch's default, non-zero) initialisation
from a fixed seed. Nothing is downloaded."""

import torch


def build(layers=4, hidden=4096, seed=0):
    torch.manual_seed(seed)
    modules = []
    for index in range(layers):
        if index:
            modules.append(torch.nn.ReLU())
        modules.append(torch.nn.Linear(hidden, hidden))
    return torch.nn.Sequential(*modules).eval()
