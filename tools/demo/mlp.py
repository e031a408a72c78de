"""The demo's model: a small MLP (64 -> 64 -> 10) with fixed random weights."""

import threading

import torch


class MLP(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def where(self, x):
        """The prediction, plus which interpreter thread made it."""
        return {"classes": self.forward(x).argmax(dim=1), "thread": threading.get_native_id()}


def build(seed=0):
    return MLP(seed).eval()
