"""Tiny random transformers of every supported family, built from configs (offline, fast)."""

from __future__ import annotations

import torch
import transformers as tf

VOCAB = 100
COMMON = dict(
    vocab_size=VOCAB,
    bos_token_id=1,
    eos_token_id=2,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
)
DECODER = dict(COMMON, num_key_value_heads=2, max_position_embeddings=64)


def _gpt2():
    config = tf.GPT2Config(
        vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, n_embd=32, n_layer=2, n_head=4, n_positions=64
    )
    return tf.GPT2LMHeadModel(config)


def _encoder(config_class, model_class, **extra):
    config = config_class(**COMMON, max_position_embeddings=64, num_labels=3, **extra)
    return model_class(config)


BUILDERS = {
    "gpt2": _gpt2,
    "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**DECODER)),
    "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**DECODER)),
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**DECODER)),
    "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**DECODER, head_dim=8)),
    "gemma3": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**DECODER, head_dim=8, sliding_window=16)),
    "bert": lambda: _encoder(tf.BertConfig, tf.BertForSequenceClassification),
    "roberta": lambda: _encoder(tf.RobertaConfig, tf.RobertaForSequenceClassification, pad_token_id=1),
    "gpt_neox": lambda: tf.GPTNeoXForCausalLM(
        tf.GPTNeoXConfig(**COMMON, max_position_embeddings=64, attention_bias=False)
    ),
    "opt": lambda: tf.OPTForCausalLM(
        tf.OPTConfig(
            vocab_size=VOCAB,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            hidden_size=32,
            ffn_dim=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        )
    ),
}
ARCHITECTURES = list(BUILDERS)


def tiny_model(architecture: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random model of one family, in eval mode, identical for the same seed."""
    torch.manual_seed(seed)
    model = BUILDERS[architecture]()
    model.config.architectures = [type(model).__name__]
    return model.eval()


def sample_inputs(batch: int = 2, length: int = 10, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=generator)


def logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).logits


CHAT_TEMPLATE = (
    "{% for message in messages %}<s> {{ message['role'] }} : {{ message['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)


def tiny_tokenizer(corpus: list[str], chat: bool = True):
    """A lowercase word-piece BPE of at most VOCAB tokens trained on ``corpus`` (ids fit tiny models)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def sample_corpus(path: str = "red_explorer/samples/restaurants_e2e.csv") -> list[str]:
    import csv

    with open(path, newline="") as handle:
        return [" ".join(row.values()) for row in csv.DictReader(handle)]


def save_tiny_causal_lm(directory, architecture: str = "llama"):
    """A tiny model + tokenizer saved as a normal folder, loadable by path (as a user's model)."""
    model = tiny_model(architecture)
    tokenizer = tiny_tokenizer(sample_corpus())
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
