"""Runaway sizes (issue 27 item 11, issue 26 item 5): the host-side batch is bounded before anything is
allocated — by the training data (a step may not draw more examples than it holds) and by the memory
guard, which counts the examples a step holds and tokenises — refused in one line naming the setting
and a value that fits."""

import os
import resource
import subprocess
import sys

import pytest

from bmtpt_cli.runtime import memory
from clihelpers import FAST, bmtpt

GIB = 2**30


def _capped(limit_bytes: int):
    """A child that cannot take the machine down if the guard fails: its address space is capped."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _run(argv, cwd, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "bmtpt_cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, preexec_fn=_capped(6 * GIB))


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr and stderr.rstrip().endswith(errors[0]), stderr
    return errors[0]


def test_adapt_batch_size_1000000_is_refused_before_the_model_loads(tmp_path):
    """Before: it tokenised a million texts a step and ran for 15 minutes."""
    assert bmtpt("source", *FAST["source"], "--out", tmp_path / "init.safetensors").exit_code == 0
    done = _run(["adapt", "--init", "init.safetensors", "--batch-size", "1000000"], tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    line = _one_error_line(done.stderr)
    assert "--batch-size 1,000,000" in line and "lower --batch-size to at most 640" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.safetensors", "init.safetensors.log.jsonl"]


def test_examples_per_task_from_the_environment_is_refused_before_sampling(tmp_path):
    """Before: BMTPT_EXAMPLES_PER_TASK=100000000 passed the memory check and reached 9.4 GB before step 1."""
    done = _run(["source"], tmp_path, env={"BMTPT_EXAMPLES_PER_TASK": "100000000"}, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    line = _one_error_line(done.stderr)
    assert "--examples-per-task 100,000,000" in line and "at most 320" in line, line
    assert list(tmp_path.iterdir()) == []


def test_the_memory_guard_counts_the_host_side_batch_and_names_a_value_that_fits(tmp_path, monkeypatch):
    """With 4 GiB available and 10 MiB a host-side example (a stand-in for long texts), a step of
    3 tasks × 320 examples needs ~9.4 GiB on the host: refused with the largest --examples-per-task that
    fits, and that value runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 4 * GIB)
    monkeypatch.setattr(memory, "HOST_EXAMPLE_BYTES", 10 * 2**20)
    argv = ["source", "--steps", "1", "--warmup-steps", "0", "--particles", "2"]
    result = bmtpt(*argv, "--examples-per-task", "320")
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr)
    assert "--examples-per-task 320 makes a step hold 960 examples" in line and "4.0 GiB are available" in line, line
    fits = int(line.rsplit("at most ", 1)[1].replace(",", ""))
    assert 50 < fits < 120, line  # (0.9 · 4 GiB − the step's tensors) / (3 · ~10 MiB)
    assert not (tmp_path / "particles.safetensors").exists()
    assert bmtpt(*argv, "--examples-per-task", str(fits)).exit_code == 0
