"""Workload "python-bound": greedy decoding with a tiny GRU, the next token chosen
in Python each step, so most of a call's time is Python bytecode (and the small
torch calls around it) holding the GIL -- the case threads in one interpreter
cannot scale and separate interpreters can."""

import torch


class GreedyDecoder:
    def __init__(self, vocab=64, embed=32, hidden=64, steps=28, seed=0):
        torch.manual_seed(seed)
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.cell = torch.nn.GRUCell(embed, hidden)
        self.head = torch.nn.Linear(hidden, vocab)
        for module in (self.embedding, self.cell, self.head):
            module.eval()
        self.hidden_size = hidden
        self.steps = steps

    def __call__(self, start_token=0):
        hidden = torch.zeros(1, self.hidden_size)
        token = int(start_token)
        out = []
        for _ in range(self.steps):
            x = self.embedding(torch.tensor([token]))
            hidden = self.cell(x, hidden)
            logits = self.head(hidden)[0].tolist()
            # The argmax in Python on purpose: this is the bytecode-bound part.
            best, best_value = 0, logits[0]
            for i, value in enumerate(logits):
                if value > best_value:
                    best, best_value = i, value
            token = best
            out.append(token)
        return out


def build(**kwargs):
    return GreedyDecoder(**kwargs)


def example_inputs():
    """Arguments of one call (plain Python values: the same from Node and from Python)."""
    return [1]
