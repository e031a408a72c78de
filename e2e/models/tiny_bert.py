"""An e2e fixture for the venv (transformers): a tiny BERT sequence classifier built
from a random configuration, so nothing is downloaded. Packed with zero config: the
signature (input_ids, attention_mask: int64 [-1, 8]; logits) comes from example_inputs().
Caches are off: a call returns tensors only."""
import torch
import transformers

VOCABULARY = 64


def build(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCABULARY, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, num_labels=3, use_cache=False,
    )
    return transformers.BertForSequenceClassification(config).eval()


def example_inputs():
    """Two sequences of 8 token ids, the second padded by 3."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCABULARY, (2, 8), generator=generator)
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, -3:] = 0
    return ids, mask
