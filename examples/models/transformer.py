"""Example: a small Transformer encoder (d_model 64, 4 heads, 2 layers, batch_first)
with a linear head, random weights, eval mode.

    npx coil pack examples/models/transformer.py:build -o transformer.coil \
        --input x:float32:-1,-1,64 --output-spec y:float32:-1,-1,8

Unlike the other examples, the packed object is an instance of a class defined
here (TinyTransformer), so this file travels in the archive as source (it is
interned: torch.package found it by scanning the pickle), and the loading side
needs nothing but torch.
"""

import torch


class TinyTransformer(torch.nn.Module):
    def __init__(self, d_model=64, heads=4, layers=2, classes=8):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(
            d_model=d_model, nhead=heads, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, num_layers=layers)
        self.head = torch.nn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.encoder(x))


def build(seed=0, d_model=64, heads=4, layers=2):
    torch.manual_seed(seed)
    return TinyTransformer(d_model, heads, layers).eval()


def example_inputs():
    """The arguments of one call: a float32 batch of 2 sequences of 16 tokens [2, 16, 64]."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(2, 16, 64, generator=generator)]
