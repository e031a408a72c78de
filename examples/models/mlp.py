"""Example: a small MLP, 8 rows of 64 features -> 64 -> 10, with random weights.

    npx coil pack examples/models/mlp.py:build -o mlp.coil \
        --input x:float32:-1,64 --output-spec y:float32:-1,10

The packed object is a plain torch.nn.Sequential, so the archive holds only a
pickle and tensor data: every module it needs (torch.nn) is taken from the
interpreter that loads it.
"""

import torch


def build(seed=0):
    """The model, with weights drawn from torch's generator seeded with `seed`."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    return model.eval()


def example_inputs():
    """The arguments of one call: a float32 batch [8, 64]."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(8, 64, generator=generator)]
