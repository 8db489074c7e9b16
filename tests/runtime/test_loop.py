"""The shared training-loop helper on a toy problem: resume is exact, stops checkpoint, settings must match."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.checkpoint import Interrupted, load_checkpoint
from bmtpt_cli.runtime.loop import RunFiles, TrainingLoop
from bmtpt_cli.runtime.schedule import linear_schedule

STEPS = 6


def _train(files: RunFiles | None, *, stop_at: int | None = None) -> torch.Tensor:
    """SGD with noise from the data generator on ½‖x − 3‖², through TrainingLoop: what a real loop does."""
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.AdamW([x], lr=files.fingerprint.get("lr", 0.5) if files else 0.5)
    scheduler = linear_schedule(optimizer, warmup_steps=1, total_steps=STEPS)
    loop = TrainingLoop(files, total_steps=STEPS, checkpoint_every=2, optimizer=optimizer, scheduler=scheduler, generator=generator)
    saved = loop.resume()
    if saved is not None:
        with torch.no_grad():
            x.copy_(saved["x"])
    with loop:
        while loop.step < STEPS:
            noise = torch.randn(4, generator=generator)
            loss = 0.5 * ((x - 3 - noise) ** 2).sum()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            loop.step += 1
            if loop.step == stop_at:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, mid-run
            loop.end_step({"step": loop.step, "loss": loss.item()}, lambda: {"x": x.detach().clone()})
    return x.detach().clone()


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    full = _train(RunFiles(tmp_path / "full.ckpt", tmp_path / "full.log.jsonl", False, {"lr": 0.5}))
    files = RunFiles(tmp_path / "cut.ckpt", tmp_path / "cut.log.jsonl", False, {"lr": 0.5})
    with pytest.raises(Interrupted, match="after step 3.*--resume"):
        _train(files, stop_at=3)
    assert load_checkpoint(files.checkpoint)["step"] == 3  # a checkpoint on the stop, between the periodic ones
    resumed = _train(RunFiles(files.checkpoint, files.log, True, {"lr": 0.5}))
    assert torch.equal(resumed, full)
    steps = [json.loads(line)["step"] for line in files.log.read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # the log continues where the checkpoint left off


def test_resume_refuses_other_settings_and_names_the_setting(tmp_path):
    files = RunFiles(tmp_path / "run.ckpt", tmp_path / "run.log.jsonl", False, {"lr": 0.5})
    _train(files)
    with pytest.raises(BmtptError, match=r"'lr' was 0.5, now 0.7 .* \(or a lower --lr\)"):
        _train(RunFiles(files.checkpoint, files.log, True, {"lr": 0.7}))
    with pytest.raises(BmtptError, match="'steps' was None, now 3"):
        _train(RunFiles(files.checkpoint, files.log, True, {"lr": 0.5, "steps": 3}))


def test_a_resume_may_lower_the_learning_rate_and_records_it(tmp_path):
    """The way on after a divergence: the checkpoint's optimizer and schedule continue with the lower
    base rate from the checkpoint's step, the next log record and later checkpoints say so."""
    files = RunFiles(tmp_path / "run.ckpt", tmp_path / "run.log.jsonl", False, {"lr": 0.5})
    with pytest.raises(Interrupted):
        _train(files, stop_at=3)
    _train(RunFiles(files.checkpoint, files.log, True, {"lr": 0.1}))
    records = [json.loads(line) for line in files.log.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert records[3]["lr_lowered"] == {"step": 3, "lr": {"was": 0.5, "now": 0.1}}
    assert all("lr_lowered" not in r for i, r in enumerate(records) if i != 3)
    assert load_checkpoint(files.checkpoint)["lr_changes"] == [records[3]["lr_lowered"]]
    # the schedule continues at its step with the new base: the same factor as an lr-0.1 run from the start
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = linear_schedule(optimizer, warmup_steps=1, total_steps=STEPS)
    for _ in range(STEPS):
        optimizer.step()
        scheduler.step()
    state = load_checkpoint(files.checkpoint)
    assert state["optimizer"]["param_groups"][0]["lr"] == optimizer.param_groups[0]["lr"]
    assert state["scheduler"]["base_lrs"] == [0.1]


def test_without_files_nothing_is_written_and_a_stop_still_stops(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert torch.isfinite(_train(None)).all()
    with pytest.raises(Interrupted, match="no checkpoint kept"):
        _train(None, stop_at=2)
    assert list(tmp_path.iterdir()) == []


def test_last_good_names_the_checkpoint_step(tmp_path):
    files = RunFiles(tmp_path / "run.ckpt", None, False, {})
    _train(files)
    loop = TrainingLoop(files, total_steps=1, checkpoint_every=1, optimizer=None, scheduler=None, generator=None)
    assert f"'{files.checkpoint}' (step {STEPS})" in loop.last_good()
    assert "no checkpoint yet" in TrainingLoop(None, total_steps=1, checkpoint_every=1, optimizer=None,
                                               scheduler=None, generator=None).last_good()
