"""An e2e fixture packed with zero config: two inputs of different dtypes (float32
features, int64 ids) and a dict of three outputs of three dtypes (float32 scores, int64
best class, float64 norm). Its signature comes from example_inputs() alone."""
import torch


class Scorer(torch.nn.Module):
    def __init__(self, features=6, vocabulary=4, classes=4):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary, features)
        self.head = torch.nn.Linear(features, classes)

    def forward(self, features, ids):
        hidden = features + self.embedding(ids).mean(dim=1)
        scores = self.head(hidden)
        return {"scores": scores, "best": scores.argmax(dim=-1), "norm": hidden.to(torch.float64).norm(dim=-1)}


def build(seed=0):
    torch.manual_seed(seed)
    return Scorer().eval()


def example_inputs():
    """features float32 [3, 6], ids int64 [3, 5] (below the vocabulary of 4)."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, 6, generator=generator), torch.randint(0, 4, (3, 5), generator=generator)
