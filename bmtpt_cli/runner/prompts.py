"""Soft-prompt initialisation from the LM's own vocabulary embeddings (Lester et al. 2021)."""

from __future__ import annotations

import torch

NUM_SPECIAL_IDS = 3  # pad, eos, unk in both T5's SentencePiece and ByT5's byte vocabulary


def sample_vocab_prompts(
    embeddings: torch.Tensor,
    *,
    count: int,
    length: int,
    vocab_limit: int,
    generator: torch.Generator,
    top_k: int = 5000,
) -> torch.Tensor:
    """Draw `count` prompts of `length` token embeddings each, a different draw per prompt.

    Token ids are sampled uniformly from the `top_k` most frequent tokens (SentencePiece ids are in
    frequency order), skipping the special ids; `vocab_limit` is the tokenizer's vocabulary size, so
    rows of the embedding matrix that no token uses are never drawn. Returns float32 `(count, length, d)`.
    """
    high = min(top_k, vocab_limit, embeddings.shape[0])
    if high <= NUM_SPECIAL_IDS:
        raise ValueError(f"vocabulary too small to sample prompts from ({high} ids)")
    ids = torch.randint(NUM_SPECIAL_IDS, high, (count, length), generator=generator)  # (count, l)
    return embeddings.detach().float().cpu()[ids].clone()
