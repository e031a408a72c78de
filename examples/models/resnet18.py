"""Example: torchvision's ResNet-18 with random weights (weights=None: nothing is
downloaded), in eval mode, batch 1 at 224x224.

    npx coil pack examples/models/resnet18.py:build -o resnet18.coil \
        --input image:float32:-1,3,224,224 --output-spec logits:float32:-1,1000

torchvision is an installed distribution, so coil pack externs it (it could not be
interned: it imports PIL and has compiled operators, torchvision._C, which an archive
cannot carry) and records its version: the loading interpreter imports its own
torchvision, which must therefore be installed where the archive is loaded (Debian:
python3-torchvision).
"""

import torch
import torchvision


def build(seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).eval()


def example_inputs():
    """The arguments of one call: a float32 image batch [1, 3, 224, 224]."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(1, 3, 224, 224, generator=generator)]
