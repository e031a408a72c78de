"""Example: a byte-level text classifier that takes text, not tensors: its input is a
BYTES tensor (the Open Inference Protocol's strings), which reaches the model as a list
of `bytes`. Each text's UTF-8 bytes are embedded, averaged (EmbeddingBag), and
classified into 4 classes. Random weights.

    npx coil pack examples/models/text_classifier.py:build -o text_classifier.coil \
        --input text:bytes:-1 --output-spec logits:float32:-1,4

    curl localhost:8000/v2/models/text_classifier/infer \
        -d '{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["hello","wörld"]}]}'

Like the transformer example, the class is defined here, so this file travels in the
archive as source.
"""

import torch


class ByteTextClassifier(torch.nn.Module):
    def __init__(self, classes=4, dim=32):
        super().__init__()
        self.embedding = torch.nn.EmbeddingBag(256, dim, mode="mean")
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, texts):
        """texts: a list of bytes (or str) -> logits float32 [len(texts), classes]."""
        encoded = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]
        ids = torch.tensor([b for text in encoded for b in text], dtype=torch.long)
        lengths = torch.tensor([len(text) for text in encoded], dtype=torch.long)
        offsets = torch.cumsum(lengths, 0) - lengths
        return self.head(self.embedding(ids, offsets))


def build(seed=0):
    torch.manual_seed(seed)
    return ByteTextClassifier().eval()


def example_inputs():
    """The arguments of one call: three texts, one of them empty."""
    return [[b"hello", "w\u00f6rld \U0001f40d".encode("utf-8"), b""]]
