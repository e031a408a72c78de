"""Workload "mlp": a small MLP, 8 rows of 64 features -> 64 -> 10. Little compute
per call, so the cost of getting a call into and out of Python shows."""

import torch


def build(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    return model.eval()


def example_args():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(8, 64, generator=generator)]
