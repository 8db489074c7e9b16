"""Data parallelism: 2 gloo processes under torchrun give the particles/prompts of 1 process."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

pytestmark = pytest.mark.integration

COMMON = {
    "source": ["source", "--steps", "4", "--particles", "2", "--examples-per-task", "2", "--warmup-steps", "1"],
    "adapt": ["adapt", "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--warmup-steps", "1", "--init", "random"],
}


def _tensors(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_two_gloo_processes_match_one_process(command, tmp_path):
    argv = [*COMMON[command], "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "bmtpt_cli", *argv, "--out", "one.safetensors"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "bmtpt_cli", *argv, "--out", "two.safetensors"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    single, parallel = _tensors(tmp_path / "one.safetensors"), _tensors(tmp_path / "two.safetensors")
    assert single.keys() == parallel.keys()
    for name in single:
        # the same sums added in another order: float32 round-off, nothing more
        torch.testing.assert_close(parallel[name], single[name], rtol=1e-4, atol=1e-5)
    log_one = [json.loads(line) for line in (tmp_path / "one.safetensors.log.jsonl").read_text().splitlines()]
    log_two = [json.loads(line) for line in (tmp_path / "two.safetensors.log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log_two] == pytest.approx([r["loss"] for r in log_one], rel=1e-5)  # full-batch losses
    assert two.stdout.count("wrote") == 1  # only the main process reports (and writes)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two")) == ["two.safetensors", "two.safetensors.log.jsonl"]
