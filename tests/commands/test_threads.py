"""`--threads` on every command, applied before any work; provenance records the thread count, the
CPU model and the instruction set PyTorch uses (issue 26 item 6)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from bmtpt_cli.app import COMMANDS
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.runtime.threads import default_threads
from clihelpers import FAST, bmtpt

SETTINGS_COMMANDS = [name for name in COMMANDS if name not in ("tasks", "reproduce")]  # `tasks` only lists the registry; `reproduce` sets threads per run (--set all.threads=N)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", SETTINGS_COMMANDS)
def test_every_command_takes_threads(command):
    result = bmtpt(command, "--threads", "1", "--print-config")
    assert result.exit_code == 0, result.output
    assert "threads = 1  # --threads" in result.stdout


@pytest.mark.parametrize("value", ["0", "-1", "100000"])
def test_a_thread_count_out_of_range_is_one_line(value):
    result = bmtpt("source", "--threads", value, "--print-config")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "--threads" in result.output, result.output


def test_threads_are_applied_and_recorded_in_the_artifact(tmp_path, restore_threads):
    torch.set_num_threads(2)
    out = tmp_path / "p.safetensors"
    result = bmtpt("source", *FAST["source"], "--threads", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    with safe_open(str(out), framework="pt") as handle:
        recorded = json.loads(handle.metadata()["bmtpt.provenance"])
    assert recorded["threads"] == 1
    assert recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert recorded["cpu"] and recorded["machine"]


def test_results_record_the_threads(tmp_path, restore_threads):
    prompts = tmp_path / "prompts.safetensors"
    assert bmtpt("adapt", *FAST["adapt"], "--init", "random", "--prompt-length", "8", "--out", prompts).exit_code == 0
    result = bmtpt("evaluate", "--prompts", prompts, "--threads", "1", "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "r.json").read_text())["provenance"]
    assert recorded["threads"] == 1 and recorded["cpu_capability"]
    exported = bmtpt("export", "--prompts", prompts, "--format", "safetensors", "--out", tmp_path / "export")
    assert exported.exit_code == 0, exported.output
    card = next((tmp_path / "export").rglob("README.md")).read_text()
    assert f"({torch.backends.cpu.get_cpu_capability()})" in card and "threads" in card


def test_the_default_follows_omp_num_threads_else_the_rule(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads("t5-base") == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads("toy") == 1 and default_threads("tiny") == 1
    assert 1 <= default_threads("t5-base") <= 4


def test_provenance_names_threads_cpu_and_instruction_set():
    recorded = provenance("cpu")
    assert recorded["threads"] == torch.get_num_threads()
    assert recorded["interop_threads"] == torch.get_num_interop_threads()
    assert recorded["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(recorded["cpu"], str) and recorded["cpu"]


def test_seed_help_says_what_it_guarantees():
    result = bmtpt("source", "--help")
    flattened = " ".join(result.stdout.replace("│", " ").split())
    assert "same machine" in flattened and "thread count" in flattened
