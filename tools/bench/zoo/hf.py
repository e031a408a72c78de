"""The zoo's transformers architectures (venv stack: torch 2.x + transformers), built
from small random configurations (nothing downloads), one factory per model and one
example-inputs function per input kind, batch 1, for `coil pack --example NAME`.

Caches are off (use_cache=False) and return_dict stays on: a call returns tensors
only (a dict of them), as served models do."""
import torch
import transformers as hf

VOCAB = 96
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
TEXT = dict(vocab_size=VOCAB, max_position_embeddings=64, **SMALL)
DECODER = dict(TEXT, use_cache=False, pad_token_id=0, bos_token_id=0, eos_token_id=0)
SEQ2SEQ = dict(
    vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, use_cache=False,
    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=0,
)
VISION = dict(image_size=32, num_channels=3)


def _built(model_class, config):
    torch.manual_seed(0)
    return model_class(config).eval()


# --- encoders ------------------------------------------------------------------------

def bert():
    return _built(hf.BertModel, hf.BertConfig(**TEXT))


def roberta():
    return _built(hf.RobertaForMaskedLM, hf.RobertaConfig(pad_token_id=1, **TEXT))


def deberta_v2():
    return _built(hf.DebertaV2Model, hf.DebertaV2Config(**TEXT))


def distilbert():
    config = hf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64)
    return _built(hf.DistilBertForSequenceClassification, config)


def albert():
    return _built(hf.AlbertModel, hf.AlbertConfig(embedding_size=16, **TEXT))


def electra():
    return _built(hf.ElectraForSequenceClassification, hf.ElectraConfig(embedding_size=16, **TEXT))


def xlm_roberta():
    return _built(hf.XLMRobertaModel, hf.XLMRobertaConfig(pad_token_id=1, **TEXT))


def mpnet():
    return _built(hf.MPNetModel, hf.MPNetConfig(pad_token_id=1, **TEXT))


# --- decoders (causal LMs) ---------------------------------------------------------------

def gpt2():
    config = hf.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, use_cache=False, bos_token_id=0, eos_token_id=0)
    return _built(hf.GPT2LMHeadModel, config)


def gpt_neo():
    config = hf.GPTNeoConfig(
        vocab_size=VOCAB, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
        attention_types=[[["global", "local"], 1]], window_size=8, use_cache=False, bos_token_id=0, eos_token_id=0,
    )
    return _built(hf.GPTNeoForCausalLM, config)


def opt():
    config = hf.OPTConfig(
        vocab_size=VOCAB, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        ffn_dim=64, word_embed_proj_dim=32, use_cache=False, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    return _built(hf.OPTForCausalLM, config)


def bloom():
    config = hf.BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, use_cache=False, bos_token_id=0, eos_token_id=0)
    return _built(hf.BloomForCausalLM, config)


def llama():
    return _built(hf.LlamaForCausalLM, hf.LlamaConfig(num_key_value_heads=2, **DECODER))


def mistral():
    return _built(hf.MistralForCausalLM, hf.MistralConfig(num_key_value_heads=2, sliding_window=None, **DECODER))


def qwen2():
    return _built(hf.Qwen2ForCausalLM, hf.Qwen2Config(num_key_value_heads=2, **DECODER))


def phi():
    return _built(hf.PhiForCausalLM, hf.PhiConfig(**DECODER))


def gemma():
    return _built(hf.GemmaForCausalLM, hf.GemmaConfig(num_key_value_heads=2, head_dim=8, **DECODER))


# --- encoder-decoders ----------------------------------------------------------------------

def t5():
    config = hf.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4, use_cache=False,
        decoder_start_token_id=0,
    )
    return _built(hf.T5ForConditionalGeneration, config)


def bart():
    return _built(hf.BartModel, hf.BartConfig(**SEQ2SEQ))


def marian():
    return _built(hf.MarianMTModel, hf.MarianConfig(**SEQ2SEQ))


def pegasus():
    return _built(hf.PegasusModel, hf.PegasusConfig(**SEQ2SEQ))


# --- vision --------------------------------------------------------------------------------

def vit():
    return _built(hf.ViTModel, hf.ViTConfig(patch_size=8, **VISION, **SMALL))


def deit():
    return _built(hf.DeiTForImageClassification, hf.DeiTConfig(patch_size=8, **VISION, **SMALL))


def convnext():
    config = hf.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], image_size=32)
    return _built(hf.ConvNextForImageClassification, config)


def resnet():
    config = hf.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1])
    return _built(hf.ResNetForImageClassification, config)


def swin():
    config = hf.SwinConfig(image_size=32, patch_size=4, num_channels=3, embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4)
    return _built(hf.SwinModel, config)


# --- audio ---------------------------------------------------------------------------------

def wav2vec2():
    config = hf.Wav2Vec2Config(
        vocab_size=VOCAB, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, **SMALL,
    )
    return _built(hf.Wav2Vec2Model, config)


def hubert():
    config = hf.HubertConfig(
        vocab_size=VOCAB, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, **SMALL,
    )
    return _built(hf.HubertModel, config)


def whisper():
    config = hf.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=16, max_target_positions=16,
        use_cache=False, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=0,
    )
    return _built(hf.WhisperModel, config)


# --- inputs ----------------------------------------------------------------------------------

def _tokens(length=16, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (1, length), generator=generator)


def encoder_inputs():
    """input_ids, attention_mask: one sequence of 16 tokens."""
    ids = _tokens()
    return ids, torch.ones_like(ids)


def decoder_inputs():
    """input_ids, attention_mask (causal models)."""
    ids = _tokens(seed=2)
    return ids, torch.ones_like(ids)


def ids_inputs():
    """input_ids only (GPT-2, GPT-Neo and BLOOM take past_key_values second, not the mask)."""
    return (_tokens(seed=2),)


def seq2seq_inputs():
    """input_ids, attention_mask, decoder_input_ids."""
    ids = _tokens(seed=3)
    return ids, torch.ones_like(ids), _tokens(length=8, seed=4)


def image_inputs():
    """pixel_values: one 32x32 RGB image."""
    generator = torch.Generator().manual_seed(5)
    return (torch.randn(1, 3, 32, 32, generator=generator),)


def audio_inputs():
    """input_values: 0.1 s of 16 kHz audio."""
    generator = torch.Generator().manual_seed(6)
    return (torch.randn(1, 1600, generator=generator),)


def whisper_inputs():
    """input_features (16 mel bins x 32 frames: twice max_source_positions), attention_mask, decoder_input_ids."""
    generator = torch.Generator().manual_seed(7)
    return torch.randn(1, 16, 32, generator=generator), torch.ones(1, 32, dtype=torch.int64), _tokens(length=4, seed=8)
