"""Whether a model's tokenizer knows a task's words (issue 26).

A toy model's word-level tokenizer knows its world's closed vocabulary (173 words for `toy`) and maps every other word to
`<unk>`: on real text it would read mostly `<unk>` and still print scores. A task whose sampled inputs
and label words are more than `UNKNOWN_LIMIT` unknown to it is refused, naming the share it knows.
For every model, a label word containing `<unk>` is refused: rank scoring would compare `<unk>`s
(two such label words tie), not the words.
"""

from __future__ import annotations

import functools
from pathlib import Path

from bmtpt_cli.errors import BmtptError

TOY = "toy"
_MODELS = Path(__file__).resolve().parent.parent / "models"
TOY_TOKENIZER_DIRS = {"toy": _MODELS / "toy", "toy-wide": _MODELS / "toy", "toy3": _MODELS / "toy3"}
"""The shipped toy models (`runner.model.TOY_MODELS`' names; a test checks that the two agree) and the folder of
the closed word-level tokenizer each reads: the toy world's 173 words (`toy`, `toy-wide`) or the third world's."""
TOY_MODEL_NAMES = tuple(TOY_TOKENIZER_DIRS)
UNKNOWN_LIMIT = 0.20
"""Largest share of `<unk>` tokens the toy model accepts in a task's sampled inputs and label words."""
SAMPLE_PER_SPLIT = 100
"""Examples of each loaded split whose inputs are sampled (the first ones)."""
REAL_MODEL_HINT = "use a real T5 (--model t5-base)"
TOY_TOKENIZER_DIR = TOY_TOKENIZER_DIRS[TOY]
"""The shipped toy model's folder, `runner.model.TOY_DIR` (the data layer sits below the runner, so it names
the folder itself; a test checks that the two agree)."""


@functools.lru_cache(maxsize=None)
def toy_tokenizer(model: str = TOY):
    """A shipped toy model's tokenizer (read once, local files only)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(TOY_TOKENIZER_DIRS[model], local_files_only=True)


def _unknown(tokenizer, text: str) -> tuple[int, int]:
    """(tokens, `<unk>` tokens) of a text, special tokens left out."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return len(ids), sum(1 for i in ids if i == tokenizer.unk_token_id)


def unknown_label_words(tokenizer, words) -> list[str]:
    """The label words that contain `<unk>` for this tokenizer."""
    if tokenizer.unk_token_id is None:
        return []
    return [word for word in words if _unknown(tokenizer, word)[1]]


def check_label_words(tokenizer, task, label_style: str, model: str = "the model") -> None:
    """Refuse a task whose label words (or digits) the tokenizer maps to `<unk>`: rank scoring would tie."""
    words = task.verbalisers(label_style)
    unknown = unknown_label_words(tokenizer, words or ())
    if unknown:
        plural = len(unknown) > 1
        raise BmtptError(
            f"label word{'s' if plural else ''} {', '.join(map(repr, unknown))} of task {task.name} "
            f"map{'' if plural else 's'} to <unk> in {model}'s vocabulary, so rank scoring cannot tell the labels apart: "
            + (REAL_MODEL_HINT if model == "the toy model" else "use a model whose vocabulary has them")
        )


def check_toy_vocabulary(tasks, loaded: dict[str, dict[str, list]], label_style: str, model: str = TOY) -> None:
    """Refuse tasks a toy model cannot read: under 1 - UNKNOWN_LIMIT of their words known, or a label word unknown.

    `loaded`: split -> task name -> examples (as `DataConfig.splits` returns them); `model`: a TOY_MODEL_NAMES name.
    """
    tokenizer = toy_tokenizer(model)
    for task in tasks:
        texts = [e.source for examples in loaded.values() for e in examples.get(task.name, [])[:SAMPLE_PER_SPLIT]]
        texts += list(task.verbalisers(label_style) or ())
        tokens = unknown = 0
        for text in texts:
            count, unk = _unknown(tokenizer, text)
            tokens, unknown = tokens + count, unknown + unk
        if tokens and unknown / tokens > UNKNOWN_LIMIT:
            known = int(100 * (tokens - unknown) / tokens)
            raise BmtptError(f"the toy model knows {known}% of the words of task {task.name}: {REAL_MODEL_HINT}")
        check_label_words(tokenizer, task, label_style, "the toy model")
