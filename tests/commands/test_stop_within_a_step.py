"""SIGTERM/SIGINT are honoured between the passes of a step, not only between steps (issue 26, Guards):
the step is abandoned, the previous step's state is checkpointed, exit 130 within seconds, and --resume
gives the uninterrupted result bit for bit."""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from safetensors import safe_open

from bmtpt_cli.runtime.checkpoint import load_checkpoint
from bmtpt_cli.runtime.outputs import RunOutput
from clihelpers import FAST, bmtpt

pytestmark = pytest.mark.integration

PASS_SECONDS = 0.4  # each pass of the model sleeps this long in the stopped process: a slow step of many passes
SLOW = f"""
import runpy, sys, time
from bmtpt_cli.runner.runner import FrozenT5Runner
real = FrozenT5Runner.token_losses
def slow(self, *args, **kwargs):
    time.sleep({PASS_SECONDS})
    return real(self, *args, **kwargs)
FrozenT5Runner.token_losses = slow
sys.argv = ["bmtpt", *sys.argv[1:]]
runpy.run_module("bmtpt_cli", run_name="__main__")
"""

# 2 particles × 3 tasks × 4 examples in passes of 1 sequence: 24 passes, ~10 s a step with the sleep
SOURCE = ["source", "--steps", "3", "--particles", "2", "--examples-per-task", "4", "--chunk-sequences", "1",
          "--checkpoint-every", "1", "--warmup-steps", "1"]
# batches of 16 in passes of 1: 16 passes, ~6.5 s a step
ADAPT = ["adapt", "--steps", "3", "--batch-size", "16", "--chunk-sequences", "1", "--eval-every", "3",
         "--checkpoint-every", "1", "--warmup-steps", "1"]


def _tensors(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_one_sigterm_inside_a_long_step_stops_within_seconds_and_resumes_bit_identically(command, tmp_path):
    argv = SOURCE if command == "source" else ADAPT
    if command == "adapt":
        assert bmtpt("source", *FAST["source"], "--out", tmp_path / "init.safetensors").exit_code == 0
        argv = [*argv, "--init", str(tmp_path / "init.safetensors")]
    full, cut = tmp_path / "full.safetensors", tmp_path / "cut.safetensors"
    files = RunOutput(cut, False, False)

    process = subprocess.Popen([sys.executable, "-c", SLOW, *argv, "--out", str(cut)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []  # stderr lines with the time they came (the interpreter's own
    # teardown after the message takes seconds on a loaded machine, so the message is what is timed)
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in process.stderr))
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if files.log.is_file() and len(files.log.read_text().splitlines()) >= 1:
                break
            time.sleep(0.02)
        time.sleep(4 * PASS_SECONDS)  # well inside step 2
        assert process.poll() is None, process.communicate()
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(line for _, line in lines)
    assert process.returncode == 130, stderr
    errors = [line.strip() for _, line in lines if line.startswith("error:")]
    (stopped_at,) = [at for at, line in lines if line.startswith("error:")]
    assert stopped_at - sent < 2 * PASS_SECONDS + 1.5, f"took {stopped_at - sent:.1f} s to stop (a step takes 6-10 s)"
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "stopped by SIGTERM during step 2" in errors[0] and "--resume" in errors[0], errors[0]
    assert load_checkpoint(files.checkpoint)["step"] == 1 and not cut.exists()
    assert [json.loads(line)["step"] for line in files.log.read_text().splitlines()] == [1]

    resumed = bmtpt(*argv, "--out", cut, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert bmtpt(*argv, "--out", full).exit_code == 0
    first, second = _tensors(full), _tensors(cut)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert [json.loads(line)["step"] for line in files.log.read_text().splitlines()] == [1, 2, 3]
