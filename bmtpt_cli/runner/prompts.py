"""Soft-prompt initialisation from the LM's own vocabulary embeddings (Lester et al. 2021).

Which tokens a prompt may start from depends on the tokenizer (`vocab_candidate_ids`); `sample_vocab_prompts`
then draws uniformly among those ids. Special tokens (pad, eos, unk, the `<extra_id_*>` sentinels, any other
special or added special token) are never candidates.
"""

from __future__ import annotations

import re

import torch

SENTINEL = re.compile(r"<extra_id_\d+>")
PRINTABLE_ASCII = range(32, 127)  # ' ' .. '~'


def special_token_ids(tokenizer) -> set[int]:
    """Every id the tokenizer treats as special: its special ids, additional/extra special tokens, sentinels."""
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}
    named = []
    for attribute in ("additional_special_tokens", "extra_special_tokens"):  # transformers 4 | 5
        tokens = getattr(tokenizer, attribute, None) or []
        named.extend(tokens.values() if isinstance(tokens, dict) else tokens)
    named = [str(t) for t in named]
    if named:
        special.update(int(i) for i in tokenizer.convert_tokens_to_ids(named) if i is not None)
    special.update(int(i) for token, i in tokenizer.get_vocab().items() if SENTINEL.fullmatch(str(token)))
    for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            special.add(int(i))
    return special


def _is_byte_level(tokenizer) -> bool:
    try:
        from transformers import ByT5Tokenizer
    except ImportError:  # pragma: no cover - transformers always ships it
        return False
    return isinstance(tokenizer, ByT5Tokenizer)


def vocab_candidate_ids(tokenizer, top_k: int = 5000) -> torch.Tensor:
    """The token ids a vocabulary-initialised prompt may draw, ascending, int64 `(K,)`.

    - byte-level (ByT5, id = byte + 3): the printable ASCII characters, bytes 32..126 — no control bytes,
      no non-ASCII bytes (lone UTF-8 fragments), no sentinels;
    - anything else, SentencePiece T5 included (its ids are in frequency order): the `top_k` lowest ids
      below `len(tokenizer)` that are not special — for t5-* and top_k = 5000, ids 3..5002.

    In both cases `top_k` caps the count (the lowest `top_k` candidates are kept). Specials are
    `special_token_ids`: never drawn.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    special = special_token_ids(tokenizer)
    if _is_byte_level(tokenizer):
        ids = tokenizer.convert_tokens_to_ids([chr(b) for b in PRINTABLE_ASCII])
        candidates = sorted({int(i) for i in ids if i is not None} - special)
    else:
        candidates = [i for i in range(len(tokenizer)) if i not in special]
    return torch.tensor(candidates[:top_k], dtype=torch.long)


def sample_vocab_prompts(
    embeddings: torch.Tensor,
    *,
    count: int,
    length: int,
    candidate_ids: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw `count` prompts of `length` token embeddings each, a different draw per prompt.

    Token ids are drawn uniformly (with replacement) from `candidate_ids` — see `vocab_candidate_ids`,
    or `FrozenT5Runner.vocab_candidate_ids`. The same generator state gives the same prompts.
    Returns float32 `(count, length, d)`.
    """
    candidate_ids = torch.as_tensor(candidate_ids, dtype=torch.long).flatten().cpu()
    if candidate_ids.numel() == 0:
        raise ValueError("no token ids to sample prompts from")
    if candidate_ids.min() < 0 or candidate_ids.max() >= embeddings.shape[0]:
        raise ValueError(f"candidate token ids outside the embedding matrix ({embeddings.shape[0]} rows)")
    picks = torch.randint(0, candidate_ids.numel(), (count, length), generator=generator)  # (count, l)
    return embeddings.detach().float().cpu()[candidate_ids[picks]].clone()
