"""Workload "resnet18": torchvision's ResNet-18 with random weights (nothing is
downloaded), batch 1 at 224x224. Compute-bound: torch kernels, not Python."""

import torch
import torchvision


def build(seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).eval()


def example_args():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, 224, 224, generator=generator)]
