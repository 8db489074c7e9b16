"""Batch-job output (issue 26, item 10): with stderr going to a pipe or a log file, progress comes
as plain lines every `--progress-every` seconds, and third-party loading bars and known warnings
are silenced unless `--verbose`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAIN_LINE = re.compile(r"^adapt: \d+/3 \(\d+%\) · \d+:\d\d:\d\d")


def _adapt(tmp_path, *args):
    """`bmtpt adapt` on the shipped toy model (a real `from_pretrained` load), stderr to a pipe."""
    from bmtpt_cli.console import QUIET_ENVIRONMENT

    # a user's shell: none of the switches that tests/conftest.py or an in-process command set here
    env = {name: value for name, value in os.environ.items() if name not in QUIET_ENVIRONMENT}
    env |= {"BMTPT_PROGRESS_EVERY": "0.02", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bmtpt_cli", "adapt", "--preset", "demo", "--init", "random", "--steps", "3",
         "--eval-every", "3", "--warmup-steps", "0", "--out", str(tmp_path / "p.safetensors"), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.mark.integration
def test_a_batch_job_gets_plain_periodic_progress_lines_and_no_third_party_bars(tmp_path):
    stderr = _adapt(tmp_path)
    lines = stderr.splitlines()
    progress = [line for line in lines if PLAIN_LINE.match(line)]
    assert progress and progress[-1].startswith("adapt: 3/3 (100%)"), stderr
    ticks = [line for line in lines if re.search(r" … \d+:\d\d:\d\d$", line) or (PLAIN_LINE.match(line) and line != progress[-1])]
    assert ticks, f"no periodic line before the end:\n{stderr}"
    assert "\x1b[" not in stderr and "━" not in stderr and "\r" not in stderr  # no terminal redrawing in a log
    assert "Loading weights" not in stderr and "it/s]" not in stderr  # transformers' tqdm bar
    assert "Token indices sequence length" not in stderr


@pytest.mark.integration
def test_verbose_restores_the_third_party_bars(tmp_path):
    stderr = _adapt(tmp_path, "--verbose")
    assert "Loading weights" in stderr


TOKENIZE_LONG_TEXT = """
import sys
from bmtpt_cli.console import configure_output
from bmtpt_cli.runner.model import load_frozen_t5
configure_output(verbose=sys.argv[1] == "verbose")
_, tokenizer = load_frozen_t5("toy")
tokenizer("the " * (tokenizer.model_max_length + 10))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_the_tokenizer_length_warning_is_silenced_unless_verbose(verbose):
    # In a fresh process: transformers binds its log handler to the stderr of the moment it is first
    # imported, which inside a long pytest session is not the one a capture fixture reads.
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}  # conftest sets it; a user's shell does not
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-c", TOKENIZE_LONG_TEXT, "verbose" if verbose else "quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("Token indices sequence length" in done.stderr) is verbose, done.stderr
