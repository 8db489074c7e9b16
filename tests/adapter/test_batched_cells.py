"""Few-shot cells adapted together (`adapter.batched`): each cell is `adapt`'s run for its own
arguments — bit for bit alone, to float32 round-off in a group — and per-example prompts score as
one prompt does."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bmtpt_cli.adapter.batched import CellSpec, adapt_cells, score_cells
from bmtpt_cli.adapter.train import adapt
from bmtpt_cli.data.registry import get_task
from bmtpt_cli.data.sampling import EpochBatches, kshot
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.score import predict, rank, score_task
from configs import adapt_config

LENGTH = 6  # prompt length


@pytest.fixture(scope="module")
def toy():
    """The shipped toy T5 (real label words: predictions are not all ties) and toy_mood_true's splits."""
    from bmtpt_cli.runner.model import load_frozen_t5
    from bmtpt_cli.runner.runner import FrozenT5Runner

    torch.set_num_threads(1)
    model, tokenizer = load_frozen_t5("toy")
    runner = FrozenT5Runner(model, tokenizer, max_source_length=128, max_target_length=16)
    task = get_task("toy_mood_true")
    splits = {split: task.examples(split, taskless=True) for split in ("train", "validation", "test")}
    return runner, task, splits


def _config(**overrides):
    base = dict(steps=6, batch_size=8, warmup_steps=2, sigma=2.0, eval_every=None, eval_batch_size=32, seed=0)
    return adapt_config(**{**base, **overrides})


def _cell(toy, seed, *, dev=True, prior=False, k=12, **overrides) -> CellSpec:
    runner, task, splits = toy
    init = 0.5 * torch.randn(LENGTH, runner.d_model, generator=torch.Generator().manual_seed(100 + seed))
    prior_mean = 0.4 * torch.randn(LENGTH, runner.d_model, generator=torch.Generator().manual_seed(200 + seed))
    config = _config(seed=seed, eval_every=2 if dev else None, **overrides)
    return CellSpec(task, kshot(splits["train"], k, seed), kshot(splits["validation"], 16, seed) if dev else [],
                    init, prior_mean if prior else None, config)


def _alone(runner, cell: CellSpec, records: list | None = None):
    """`adapt` with the arguments of one cell run alone (what `run_cells` does for a group of one)."""
    task = cell.task
    return adapt(
        runner, [task], {task.name: cell.train}, {task.name: cell.dev} if cell.dev else {}, cell.init, cell.config,
        prior_mean=cell.prior_mean, batches=EpochBatches(task.name, cell.train, cell.config.batch_size),
        on_step=records.append if records is not None else None,
    )


def _tensors(result):
    return list(result.prompts.state_dict().values())  # W, a, b


@pytest.mark.parametrize("dev", [True, False], ids=["dev-selection", "last-step"])
@pytest.mark.parametrize("prior", [True, False], ids=["prior", "no-prior"])
def test_one_cell_is_adapt_bit_for_bit(toy, dev, prior):
    runner = toy[0]
    cell = _cell(toy, 3, dev=dev, prior=prior)
    want_records, got_records = [], []
    want = _alone(runner, cell, want_records)
    (got,) = adapt_cells(runner, [cell], on_step=lambda i, record: got_records.append((i, record)))
    assert all(torch.equal(a, b) for a, b in zip(_tensors(got), _tensors(want)))
    assert got.dev_metrics == want.dev_metrics and got.best_step == want.best_step
    assert [r for _, r in got_records] == want_records and {i for i, _ in got_records} == {0}
    if dev:
        assert want.dev_metrics and 0 < want.best_step <= cell.config.steps
    else:
        assert want.dev_metrics == {} and want.best_step == cell.config.steps


def test_one_cell_in_chunked_passes_is_adapt_bit_for_bit(toy, monkeypatch):
    runner = toy[0]
    monkeypatch.setattr(runner, "chunk_sequences", 3)  # 8 sequences a step in passes of 3
    cell = _cell(toy, 4, prior=True)
    want = _alone(runner, cell)
    assert runner.last_plan.chunked
    (got,) = adapt_cells(runner, [cell])
    assert all(torch.equal(a, b) for a, b in zip(_tensors(got), _tensors(want)))
    assert got.dev_metrics == want.dev_metrics and got.best_step == want.best_step


@pytest.mark.parametrize("chunk", [None, 5], ids=["one-pass", "passes-across-cells"])
def test_three_cells_together_match_each_alone(toy, monkeypatch, chunk):
    """Three seeds (their own subsets, inits, dev examples; one cell with a prior): each cell's W, a, b equal
    its run alone to float32 round-off, and so do its dev metrics and best step.

    In one group the rows are padded to the group's longest input and target and the kernels see other
    shapes, so equality is only promised to round-off. Adam turns round-off in a near-zero gradient
    coordinate into an lr-sized difference after a few steps (`adapt` alone, chunked vs one pass: 1e-4
    after 2 steps, 0.1 after 8 at lr 0.3; the one-pass group after 8 steps was exact on a Xeon and 0.013
    off on an AMD EPYC), so both groups (one pass, and passes of 5 rows cutting through cells, each cell's
    gradient summed over the passes that hold its rows) are compared after their first step, where that
    amplification has not begun (observed difference 1.2e-6): rtol 1e-4, atol 1e-5. Several steps with
    wrapping epochs are checked bit for bit where one cell has its own passes (the test above).
    """
    runner, task, splits = toy
    steps = 1
    warmup = 0  # a warm-up must be shorter than the run (AdaptConfig)
    cells = [_cell(toy, i, prior=i == 1, steps=steps, warmup_steps=warmup) for i in range(3)]
    want = [_alone(runner, cell) for cell in cells]  # one pass each: 8 rows
    monkeypatch.setattr(runner, "chunk_sequences", chunk)
    got = adapt_cells(runner, cells)
    assert runner.last_plan.chunked == bool(chunk)
    for g, w in zip(got, want):
        for a, b in zip(_tensors(g), _tensors(w)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert g.best_step == w.best_step and g.dev_metrics == w.dev_metrics
    # the test split: every prompt on all 400 examples in shared passes, as score_task prompt by prompt
    prompts = [result.prompts.compose(0).detach() for result in got]
    scores = score_cells(runner, prompts, task, splits["test"], label_style="words", rank_score="sum")
    alone = [score_task(runner, prompt, task, splits["test"]) for prompt in prompts]
    assert [dataclasses.replace(s, calibration={}) for s in scores] == [dataclasses.replace(s, calibration={}) for s in alone]
    for got, want in zip(scores, alone):  # the label distributions come from other passes: equal to round-off
        assert got.calibration == pytest.approx(want.calibration, rel=1e-6, abs=1e-9)


def test_cells_without_dev_keep_their_last_step_beside_cells_with_dev(toy):
    runner = toy[0]
    cells = [_cell(toy, 5), dataclasses.replace(_cell(toy, 6), dev=[])]
    with_dev, without = adapt_cells(runner, cells)
    assert with_dev.dev_metrics and without.dev_metrics == {} and without.best_step == cells[1].config.steps


def test_per_example_prompts_score_as_one_prompt(toy):
    runner, task, splits = toy
    prompt = 0.5 * torch.randn(LENGTH, runner.d_model, generator=torch.Generator().manual_seed(7))
    examples = splits["test"][:40]
    per_example = prompt.expand(len(examples), -1, -1).clone()  # (E, l, d), every row the one prompt
    words = task.verbalisers("words")
    one_scores, rows_scores = [], []
    assert rank(runner, per_example, examples, words, "sum", rows_scores) == rank(runner, prompt, examples, words, "sum", one_scores)
    assert rows_scores == one_scores
    for decode in ("rank", "generate"):
        assert (predict(runner, per_example, examples, candidates=words, decode=decode, batch_size=7)
                == predict(runner, prompt, examples, candidates=words, decode=decode, batch_size=7))
    assert score_task(runner, per_example, task, examples) == score_task(runner, prompt, task, examples)
    # (P, l, d) with prompt_rows: example e under prompts[rows[e]]
    other = 0.5 * torch.randn(LENGTH, runner.d_model, generator=torch.Generator().manual_seed(8))
    rows = [e % 2 for e in range(len(examples))]
    mixed = predict(runner, torch.stack([prompt, other]), examples, candidates=words, prompt_rows=rows)
    assert [p for p, r in zip(mixed, rows) if r == 0] == predict(runner, prompt, examples[0::2], candidates=words)
    assert [p for p, r in zip(mixed, rows) if r == 1] == predict(runner, other, examples[1::2], candidates=words)
    with pytest.raises(ValueError, match="40 examples"):
        rank(runner, per_example[:3], examples, words)


@pytest.mark.parametrize("field,value", [("steps", 7), ("warmup_steps", 0), ("eval_every", 3), ("batch_size", 4),
                                         ("lr_shared", 0.1), ("lr_scales", 0.1), ("weight_decay", 0.0)])
def test_a_group_must_share_its_schedule(toy, field, value):
    first = _cell(toy, 0)
    other = dataclasses.replace(first, config=dataclasses.replace(first.config, seed=1, **{field: value}))
    with pytest.raises(BmtptError, match=field):
        adapt_cells(toy[0], [first, other])


def test_a_non_finite_loss_names_the_cell(toy):
    good, bad = _cell(toy, 0), _cell(toy, 9)
    bad = dataclasses.replace(bad, init=torch.full_like(bad.init, float("nan")))
    with pytest.raises(BmtptError, match=r"non-finite loss at adaptation step 1 of cell toy_mood_true seed 9.*lower --lr-shared"):
        adapt_cells(toy[0], [good, bad])
