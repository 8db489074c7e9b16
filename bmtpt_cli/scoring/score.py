"""Scoring a prompt on a task's examples: rank scoring of candidates or greedy generation (SPEC §4)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

import torch

from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.calibration import GENERATED, label_distribution, rank_calibration
from bmtpt_cli.scoring.metrics import compute_metrics
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.data.vocabulary import check_label_words

DECODE_MODES = ("rank", "generate")
RANK_SCORES = ("sum", "mean")
"""Rank scoring's score of a candidate: the sum of its token log-probabilities (EOS included: its
log-likelihood as a string, which favours short label words), or their mean (length-normalised)."""
MAX_PAIRS_PER_PASS = 512  # at most this many (example, candidate) pairs per rank-scoring pass


class PromptFn(Protocol):
    """An input-dependent prompt: `length` prompt vectors, and `(B, l, d)` for B input texts."""

    length: int

    def __call__(self, sources: Sequence[str]) -> torch.Tensor: ...


@dataclass(frozen=True)
class PromptEnsemble:
    """M prompts `(M, l, d)` predicting together (Bayesian model averaging, SPEC §4): rank scoring
    averages the M label distributions, generation takes the most common of the M generated texts."""

    prompts: torch.Tensor  # (M, l, d)

    @property
    def length(self) -> int:
        return self.prompts.shape[1]


Prompt = Union[torch.Tensor, PromptFn, PromptEnsemble]
"""What scoring takes: one prompt `(l, d)`, per-example prompts `(E, l, d)` (or `(P, l, d)` with
`prompt_rows`), a `PromptFn` asked for each chunk's prompts from the chunk's inputs, or a
`PromptEnsemble` of M prompts whose predictions are averaged."""


def _prompt_length(prompt: Prompt) -> int:
    """l of one prompt `(l, d)`, of per-example prompts `(E, l, d)`, of a `PromptFn` or of an ensemble."""
    if not isinstance(prompt, torch.Tensor):
        return prompt.length
    if prompt.dim() not in (2, 3):
        raise ValueError(f"a prompt is (l, d) or per-example (E, l, d), got shape {tuple(prompt.shape)}")
    return prompt.shape[-2]


def _chunk_prompts(prompt: Prompt, chunk: list[int], prompt_rows: torch.Tensor | None, examples: list) -> torch.Tensor:
    """The `(len(chunk), l, d)` prompts of a chunk of examples: one prompt `(l, d)` expanded (no copy),
    or the chunk's rows of per-example prompts `(E, l, d)` (through `prompt_rows` when given: example
    e is scored under `prompt[prompt_rows[e]]`), or a `PromptFn`'s prompts for the chunk's inputs."""
    if not isinstance(prompt, torch.Tensor):
        with torch.no_grad():
            return prompt([examples[i].source for i in chunk])
    if prompt.dim() == 2:
        return prompt.unsqueeze(0).expand(len(chunk), -1, -1)
    index = torch.as_tensor(chunk, dtype=torch.long, device=prompt.device)
    if prompt_rows is not None:
        index = prompt_rows.to(prompt.device)[index]
    return prompt.index_select(0, index)


def _check_rows(prompt: Prompt, examples: list, prompt_rows) -> torch.Tensor | None:
    """`prompt_rows` as a long tensor, checked against `prompt` and `examples` (None stays None)."""
    _prompt_length(prompt)
    if not isinstance(prompt, torch.Tensor):
        if prompt_rows is not None:
            raise ValueError("prompt_rows index stacked prompts; an input-dependent prompt makes its own")
        return None
    if prompt_rows is None:
        if prompt.dim() == 3 and prompt.shape[0] != len(examples):
            raise ValueError(f"per-example prompts: {prompt.shape[0]} prompts for {len(examples)} examples")
        return None
    rows = torch.as_tensor(prompt_rows, dtype=torch.long)
    if prompt.dim() != 3 or rows.shape != (len(examples),):
        raise ValueError("prompt_rows needs prompts (P, l, d) and one prompt index per example")
    if len(rows) and not (0 <= int(rows.min()) and int(rows.max()) < prompt.shape[0]):
        raise ValueError(f"prompt_rows index prompts 0..{prompt.shape[0] - 1} only")
    return rows


@dataclass
class TaskScore:
    """One task's metrics on one split, and how the predictions were made."""

    task: str
    metric: str  # the task's main metric
    value: float  # its value
    decode: str  # "rank" or "generate" (tasks without candidates are always generated)
    examples: int
    metrics: dict[str, float] = field(default_factory=dict)  # every metric of the task
    rules: dict[str, str] = field(default_factory=dict)  # rank_score, invalid_predictions
    invalid: int = 0  # generated predictions that are none of the candidates
    calibration: dict = field(default_factory=dict)  # ECE, NLL, Brier of the label distribution (`scoring.calibration`)
    label_scores: list[dict[str, float]] | None = field(default=None, compare=False, repr=False)
    # rank scoring: each example's {candidate: score}, kept for temperature scaling and reliability diagrams;
    # not part of a result (`report`) nor of equality (shared passes give them to float32 round-off)

    def report(self) -> dict:
        """The score as a results file records it: every field but the per-example label scores."""
        return {key: value for key, value in vars(self).items() if key != "label_scores"}


def decode_mode(task: Task, examples: list[TextExample], requested: str, label_style: str = "words") -> str:
    """The mode actually used: rank needs candidates (label words or the examples' own)."""
    if requested not in DECODE_MODES:
        raise BmtptError(f"unknown decode mode '{requested}': use one of {', '.join(DECODE_MODES)}")
    can_rank = task.verbalisers(label_style) is not None or all(e.candidates for e in examples)
    return requested if can_rank else "generate"


def rank(
    runner: FrozenT5Runner,
    prompt: Prompt,
    examples: list[TextExample],
    default_candidates: tuple[str, ...] | None,
    rank_score: str = "sum",
    scores_out: list[dict[str, float]] | None = None,
    *,
    prompt_rows: torch.Tensor | list[int] | None = None,
) -> list[str]:
    """For each example, the candidate with the highest score (never an invalid label): its
    log-likelihood (`sum`), or that divided by its number of target tokens (`mean`).

    `prompt`: one prompt `(l, d)` for every example, or per-example prompts `(E, l, d)` aligned with
    `examples`, or `(P, l, d)` with `prompt_rows` (example e under `prompt[prompt_rows[e]]`: N
    prompts' examples scored in shared passes without copying each prompt E times).

    Examples go in length-sorted chunks sized to a token budget (`runner.eval_chunks`: the
    runner's `eval_tokens` padded positions, or sized from the device; at most MAX_PAIRS_PER_PASS
    (example, candidate) pairs), so a chunk pads little; each example is encoded once for all of
    its candidates. `scores_out`: filled with each example's {candidate: score} (`evaluate --predictions`).
    """
    if isinstance(prompt, PromptEnsemble):
        return _rank_ensemble(runner, prompt, examples, default_candidates, rank_score, scores_out, prompt_rows)
    rows = _check_rows(prompt, examples, prompt_rows)
    choices = [e.candidates or default_candidates for e in examples]
    if scores_out is not None:
        scores_out[:] = [{} for _ in examples]
    predictions: list[str] = [""] * len(examples)
    decoder_positions = max(
        (sum(_target_length(runner, c) for c in candidates) for candidates in set(choices)), default=1
    )  # the candidates of one example, all through the decoder
    most_candidates = max((len(candidates) for candidates in choices), default=1)
    for chunk in runner.eval_chunks(
        [e.source for e in examples], _prompt_length(prompt), target_length=decoder_positions,
        cap=max(1, MAX_PAIRS_PER_PASS // most_candidates),
    ):
        prompts = _chunk_prompts(prompt, chunk, rows, examples)  # (B, l, d)
        scores = runner.candidate_log_likelihoods(prompts, [examples[i].source for i in chunk], [choices[i] for i in chunk])
        for i, example_scores in zip(chunk, scores):
            if rank_score == "mean":
                example_scores = example_scores / torch.tensor(
                    [_target_length(runner, c) for c in choices[i]], dtype=example_scores.dtype, device=example_scores.device
                )
            predictions[i] = choices[i][int(example_scores.argmax())]
            if scores_out is not None:
                scores_out[i] = dict(zip(choices[i], example_scores.tolist()))
    return predictions


def _member_rows(ensemble: PromptEnsemble, examples: list, prompt_rows) -> tuple[list, torch.Tensor]:
    """Every example once per member, member-major (`examples * M`), and the member of each row."""
    if prompt_rows is not None:
        raise ValueError("prompt_rows index stacked prompts; an ensemble scores every example under all its members")
    members = ensemble.prompts.shape[0]
    return list(examples) * members, torch.arange(members).repeat_interleave(len(examples))


def _rank_ensemble(runner, ensemble: PromptEnsemble, examples, default_candidates, rank_score, scores_out, prompt_rows) -> list[str]:
    """`rank` of an ensemble: every (member, example) pair in shared passes (`prompt_rows`), then each
    example's M label distributions averaged; its score of a candidate is log p̄(candidate), so the
    softmax of its scores is p̄, and its prediction is p̄'s argmax (ties: the first candidate)."""
    joined, rows = _member_rows(ensemble, examples, prompt_rows)
    member_scores: list[dict[str, float]] = []
    rank(runner, ensemble.prompts, joined, default_candidates, rank_score, member_scores, prompt_rows=rows)
    count = len(examples)
    averaged = [average_distributions(member_scores[i::count]) for i in range(count)]
    if scores_out is not None:
        scores_out[:] = averaged
    return [max(scores, key=scores.get) for scores in averaged]


def average_distributions(member_scores: Sequence[dict[str, float]]) -> dict[str, float]:
    """log p̄(c) for each candidate c, p̄ = (1/M) Σ_m softmax(scores_m)(c): the log of the members'
    averaged label distribution (Bayesian model averaging), in float64."""
    distributions = [label_distribution(scores) for scores in member_scores]
    return {label: math.log(max(math.fsum(p[label] for p in distributions) / len(distributions), 1e-300))
            for label in distributions[0]}


def _target_length(runner: FrozenT5Runner, candidate: str) -> int:
    """Target tokens of a candidate as rank scoring scores it (EOS included, truncated like targets)."""
    return min(len(runner.tokenizer(candidate).input_ids), runner.max_target_length)


def predict(
    runner: FrozenT5Runner,
    prompt: Prompt,
    examples: list[TextExample],
    *,
    candidates: tuple[str, ...] | None,
    decode: str = "rank",
    batch_size: int = 32,
    rank_score: str = "sum",
    scores_out: list[dict[str, float]] | None = None,
    prompt_rows: torch.Tensor | list[int] | None = None,
) -> list[str]:
    """Predicted target strings for `examples` under one prompt `(l, d)`, or per-example prompts
    `(E, l, d)`, or `(P, l, d)` indexed by `prompt_rows` (see `rank`).

    `rank` picks each example's best candidate (its own `candidates`, else `candidates`);
    `generate` decodes greedily and returns the generated text as it is, in length-sorted chunks
    (`runner.eval_chunks`) of at most `batch_size` examples.
    """
    if decode == "rank":
        return rank(runner, prompt, examples, candidates, rank_score, scores_out, prompt_rows=prompt_rows)
    if isinstance(prompt, PromptEnsemble):
        joined, rows = _member_rows(prompt, examples, prompt_rows)
        texts = predict(runner, prompt.prompts, joined, candidates=candidates, decode=decode, batch_size=batch_size,
                        prompt_rows=rows)
        return [plurality(texts[i::len(examples)]) for i in range(len(examples))]
    rows = _check_rows(prompt, examples, prompt_rows)
    predictions: list[str] = [""] * len(examples)
    max_new = max(len(runner.tokenizer(w).input_ids) for w in candidates) if candidates else None
    for chunk in runner.eval_chunks(
        [e.source for e in examples], _prompt_length(prompt), target_length=max_new or runner.max_target_length,
        cap=batch_size,
    ):
        texts = runner.generate(
            _chunk_prompts(prompt, chunk, rows, examples), [examples[i].source for i in chunk], max_new_tokens=max_new
        )
        for i, text in zip(chunk, texts):
            predictions[i] = text
    return predictions


def plurality(texts: Sequence[str]) -> str:
    """The most common of the members' generated texts; a tie goes to the member listed first."""
    counts = Counter(texts)
    return max(texts, key=lambda text: counts[text])


def score_task(
    runner: FrozenT5Runner,
    prompt: Prompt,
    task: Task,
    examples: list[TextExample],
    *,
    decode: str = "rank",
    batch_size: int = 32,
    label_style: str = "words",
    rank_score: str = "sum",
    invalid_predictions: str = "wrong",
    details: list[dict] | None = None,
    prompt_rows: torch.Tensor | list[int] | None = None,
) -> TaskScore:
    """The task's metrics for one prompt on `examples` (a dev or test split), with the rules used.

    Keyword defaults are the baselines' rules (what `bmtpt evaluate` defaults to as well).
    `details`: filled with one record per example (`evaluation.predictions.example_records`).
    `prompt`: `(l, d)`, or per-example `(E, l, d)` / `(P, l, d)` with `prompt_rows` (see `rank`).
    """
    mode, labels = scoring_mode(runner, task, examples, decode, label_style, rank_score)
    scores: list[dict[str, float]] = []
    predictions = predict(
        runner, prompt, examples, candidates=labels, decode=mode, batch_size=batch_size, rank_score=rank_score,
        scores_out=scores, prompt_rows=prompt_rows,
    )
    if details is not None:
        from bmtpt_cli.scoring.predictions import example_records

        details[:] = example_records(task, examples, predictions, scores if mode == "rank" else None)
    return score_predictions(task, examples, predictions, mode, label_style, rank_score, invalid_predictions,
                             scores=scores if mode == "rank" else None)


def scoring_mode(
    runner: FrozenT5Runner, task: Task, examples: list[TextExample], decode: str, label_style: str, rank_score: str
) -> tuple[str, tuple[str, ...] | None]:
    """The checks `score_task` makes before predicting, and the decode mode and label words it uses."""
    if rank_score not in RANK_SCORES:
        raise BmtptError(f"unknown rank score {rank_score!r}: use one of {', '.join(RANK_SCORES)}")
    mode = decode_mode(task, examples, decode, label_style)
    check_label_words(runner.tokenizer, task, label_style)  # an <unk> label word would tie in rank scoring
    return mode, task.verbalisers(label_style)


def score_predictions(
    task: Task, examples: list[TextExample], predictions: list[str], mode: str, label_style: str = "words",
    rank_score: str = "sum", invalid_predictions: str = "wrong", scores: list[dict[str, float]] | None = None,
) -> TaskScore:
    """`score_task`'s result from its predictions (made in `mode`) of `examples`; `scores`: each
    example's {candidate: score} under rank scoring, for the calibration of its label distribution
    (kept as the result's `label_scores`, which temperature scaling and reliability diagrams read)."""
    labels = task.verbalisers(label_style)
    values = compute_metrics(task.metrics, predictions, examples, labels=labels, invalid=invalid_predictions)
    invalid = sum(p not in (e.candidates or labels or (p,)) for p, e in zip(predictions, examples))
    rules = {"rank_score": rank_score} if mode == "rank" else {"invalid_predictions": invalid_predictions}
    if mode == "rank" and scores is not None:
        calibrated = rank_calibration(scores, [e.target for e in examples])
    else:
        calibrated = dict(GENERATED) if mode == "generate" else {}
    return TaskScore(
        task=task.name, metric=task.metric, value=values[task.metric], decode=mode, examples=len(examples),
        metrics=values, rules=rules, invalid=invalid, calibration=calibrated,
        label_scores=list(scores) if mode == "rank" and scores is not None else None,
    )
