"""Crash safety: SIGKILL at an arbitrary step then --resume gives the uninterrupted result, bit for bit;
a kill inside a write leaves the previous file; one run per output; torn logs; the few-shot grid resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from clihelpers import FAST, bmtpt, snapshot

pytestmark = pytest.mark.integration

SOURCE = ["source", "--steps", "12", "--particles", "2", "--checkpoint-every", "3", "--warmup-steps", "1"]
ADAPT = ["adapt", "--steps", "12", "--eval-every", "4", "--checkpoint-every", "3", "--batch-size", "4", "--warmup-steps", "1"]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def _kill_after_logged_step(argv: list[str], log: Path, step: int, cwd: Path) -> None:
    """Start `bmtpt ARGV` in a real process and SIGKILL it once its step log reaches `step`."""
    process = subprocess.Popen([sys.executable, "-m", "bmtpt_cli", *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if log.is_file() and len(log.read_text().splitlines()) >= step:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_sigkill_then_resume_is_bit_identical(command, tmp_path):
    argv = SOURCE if command == "source" else ADAPT
    if command == "adapt":
        assert bmtpt("source", *FAST["source"], "--out", tmp_path / "init.safetensors").exit_code == 0
        argv = [*argv, "--init", str(tmp_path / "init.safetensors")]
    full, cut = tmp_path / "full.safetensors", tmp_path / "cut.safetensors"
    assert bmtpt(*argv, "--out", full).exit_code == 0

    _kill_after_logged_step([*argv, "--out", str(cut)], tmp_path / "cut.safetensors.log.jsonl", 7, tmp_path)
    assert not cut.exists() and (tmp_path / "cut.safetensors.ckpt").exists()
    assert (tmp_path / "cut.safetensors.lock").exists()  # left by the killed run: stale, must not block

    resumed = bmtpt(*argv, "--out", cut, "--resume")
    assert resumed.exit_code == 0, resumed.output
    first, second = _tensors(full), _tensors(cut)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    log = [json.loads(line) for line in (tmp_path / "cut.safetensors.log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == list(range(1, 13))
    assert not (tmp_path / "cut.safetensors.lock").exists()


def test_a_kill_inside_a_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "particles.safetensors"
    target.write_bytes(b"the previous artifact")
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from bmtpt_cli.runtime.files import atomic_write\n"
        "def write(tmp):\n"
        "    tmp.write_bytes(b'half of a new art')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(Path(sys.argv[1]), write)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"the previous artifact"


def test_a_second_run_on_the_same_output_refuses(tmp_path):
    out = tmp_path / "particles.safetensors"
    lock = Path(f"{out}.lock")
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))  # a live run holds it
    before = snapshot(tmp_path)
    result = bmtpt("source", *FAST["source"], "--out", out)
    assert result.exit_code == 2 and "another bmtpt run" in result.stderr and str(os.getpid()) in result.stderr
    assert snapshot(tmp_path) == before


def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "particles.safetensors"
    Path(f"{out}.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    assert bmtpt("source", *FAST["source"], "--out", out).exit_code == 0
    assert out.exists() and not Path(f"{out}.lock").exists()


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path, monkeypatch):
    import bmtpt_cli.source.svgd as source_training

    out = tmp_path / "p.safetensors"
    real_step, calls = source_training.svgd_step, []

    def ctrl_c_at_4(*args, **kwargs):
        calls.append(1)
        result = real_step(*args, **kwargs)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(source_training, "svgd_step", ctrl_c_at_4)
    assert bmtpt("source", *FAST["source"], "--out", out).exit_code == 130
    monkeypatch.setattr(source_training, "svgd_step", real_step)
    log = tmp_path / "p.safetensors.log.jsonl"
    log.write_text(log.read_text() + '{"step": 5, "loss": 1.2')  # what a kill mid-line leaves
    assert bmtpt("source", *FAST["source"], "--out", out, "--resume").exit_code == 0
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_fewshot_grid_keeps_finished_cells(tmp_path, monkeypatch):
    """`evaluate --shots` killed in its second group of cells (one task's seeds run together) keeps
    the first group's rows; --resume runs only the unfinished group and gives the uninterrupted scores."""
    import bmtpt_cli.experiments.fewshot as fewshot_module

    assert bmtpt("source", *FAST["source"], "--out", tmp_path / "init.safetensors").exit_code == 0
    probe = ["evaluate", "--shots", "4", "--init", tmp_path / "init.safetensors", "--tasks", "demo_rte,demo_review",
             "--seeds", "0,1", "--steps", "2", "--batch-size", "4"]
    full = bmtpt(*probe, "--out", tmp_path / "full.json")
    assert full.exit_code == 0, full.output

    real_cells, groups = fewshot_module.adapt_cells, []

    def stop_in_the_second_group(runner, cells, **kwargs):
        groups.append([cell.task.name for cell in cells])
        if len(groups) == 2:
            raise KeyboardInterrupt  # the job is killed while the second group (demo_review's seeds) runs
        return real_cells(runner, cells, **kwargs)

    monkeypatch.setattr(fewshot_module, "adapt_cells", stop_in_the_second_group)
    with pytest.raises(KeyboardInterrupt):
        from bmtpt_cli.experiments.probe import FewshotJob, run_fewshot
        from bmtpt_cli.settings import build, resolve_settings

        settings = resolve_settings("evaluate", None, {
            "shots": 4, "init": str(tmp_path / "init.safetensors"), "tasks": "demo_rte,demo_review", "seeds": "0,1",
            "steps": 2, "batch_size": 4, "out": tmp_path / "cut.json",
        })
        run_fewshot(build(FewshotJob, settings, required_length=None, eval_every=None, checkpoint_every=2,
                          settings=settings.model_dump(mode="json")))
    assert groups == [["demo_rte", "demo_rte"], ["demo_review", "demo_review"]]
    cells = tmp_path / "cut.json.cells.jsonl"
    assert [json.loads(line)["task"] for line in cells.read_text().splitlines()] == ["demo_rte", "demo_rte"]
    assert not (tmp_path / "cut.json").exists()

    refused = bmtpt(*probe, "--out", tmp_path / "cut.json")
    assert refused.exit_code == 2 and "--resume" in refused.stderr

    groups.clear()
    monkeypatch.setattr(fewshot_module, "adapt_cells", lambda runner, cells, **k: groups.append(len(cells)) or real_cells(runner, cells, **k))
    resumed = bmtpt(*probe, "--out", tmp_path / "cut.json", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert groups == [2]  # only the unfinished group ran again
    assert json.loads((tmp_path / "cut.json").read_text())["results"] == json.loads((tmp_path / "full.json").read_text())["results"]
    assert not cells.exists()
