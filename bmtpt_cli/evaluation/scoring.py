"""Scoring a prompt on a task's examples: rank scoring of label words or greedy generation (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.evaluation.metrics import compute_metric
from bmtpt_cli.runner.runner import FrozenT5Runner

DECODE_MODES = ("rank", "generate")


@dataclass
class TaskScore:
    """One task's metric on one split, and how predictions were made."""

    task: str
    metric: str
    value: float
    decode: str
    examples: int


def predict(
    runner: FrozenT5Runner,
    prompt: torch.Tensor,
    examples: list[TextExample],
    *,
    label_words: tuple[str, ...] | None,
    decode: str = "rank",
    batch_size: int = 32,
) -> list[str]:
    """Predicted target strings for `examples` under one prompt `(l, d)`.

    `rank` picks the label word with the highest log-likelihood (never an invalid label);
    `generate` decodes greedily and returns the generated text as it is.
    """
    if decode not in DECODE_MODES:
        raise BmtptError(f"unknown decode mode '{decode}': use one of {', '.join(DECODE_MODES)}")
    if decode == "rank" and not label_words:
        raise BmtptError("rank scoring needs label words and this task has none: use --decode generate")
    predictions: list[str] = []
    for start in range(0, len(examples), batch_size):
        chunk = [e.source for e in examples[start : start + batch_size]]
        prompts = prompt.unsqueeze(0).expand(len(chunk), -1, -1)  # (B, l, d)
        if decode == "rank":
            scores = runner.score_candidates(prompts, chunk, list(label_words))  # (B, C)
            predictions.extend(label_words[i] for i in scores.argmax(dim=1).tolist())
        else:
            max_new = max(len(runner.tokenizer(w).input_ids) for w in label_words) if label_words else None
            predictions.extend(runner.generate(prompts, chunk, max_new_tokens=max_new))
    return predictions


def score_task(
    runner: FrozenT5Runner,
    prompt: torch.Tensor,
    task: Task,
    examples: list[TextExample],
    *,
    decode: str = "rank",
    batch_size: int = 32,
) -> TaskScore:
    """The task's metric for one prompt on `examples` (a dev or test split)."""
    predictions = predict(
        runner, prompt, examples, label_words=task.label_words, decode=decode, batch_size=batch_size
    )
    value = compute_metric(task.metric, predictions, [e.target for e in examples])
    return TaskScore(task=task.name, metric=task.metric, value=value, decode=decode, examples=len(examples))
