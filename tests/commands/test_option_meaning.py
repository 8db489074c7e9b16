"""One meaning per option across commands, file kinds checked, failed runs leave nothing that blocks
the rerun, and every usage error is one line (issue 26 item 8)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, save_particles, save_prompts
from clihelpers import bmtpt, listing

TINY_D = 64
FAST = ["--steps", "1", "--batch-size", "4", "--prompt-length", "8"]


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def _particles(path, count=2):
    particles = torch.randn(count, 8, TINY_D, generator=torch.Generator().manual_seed(0))
    save_particles(path, particles, tasks=["demo_sentiment"],
                   metadata=common_metadata(kind=PARTICLES, model="tiny", d_model=TINY_D, prompt_length=8, config={}))


def _prompts(path):
    generator = torch.Generator().manual_seed(0)
    save_prompts(path, torch.randn(8, TINY_D, generator=generator),
                 {"demo_rte": (torch.ones(8), torch.ones(TINY_D))},
                 metadata=common_metadata(kind=PROMPTS, model="tiny", d_model=TINY_D, prompt_length=8, config={}))


# ------------------------------------------------------------------------------------------- --seeds
def _resolved_seeds(*argv) -> str:
    result = bmtpt(*argv, "--print-config")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("seeds = ")]
    return line.split("  #")[0]


@pytest.mark.parametrize("command", [["fewshot"], ["evaluate", "--shots", "4"]])
def test_seeds_means_the_same_in_every_command(command):
    assert _resolved_seeds(*command, "--seeds", "0,1,2") == "seeds = [0, 1, 2]"
    assert _resolved_seeds(*command, "--seeds", "3-5") == "seeds = [3, 4, 5]"
    assert _resolved_seeds(*command, "--seeds", "3") == "seeds = [0, 1, 2]"  # a single number is a count
    assert _resolved_seeds(*command, "--seeds", "2", "--seed", "7") == "seeds = [7, 8]"


@pytest.mark.parametrize("value", ["0", "2-1", "a", "1,,x"])
def test_a_seeds_value_of_neither_form_is_refused_with_the_forms(value):
    for command in (["fewshot"], ["evaluate", "--shots", "4"]):
        line = _one_line(bmtpt(*command, "--seeds", value, "--print-config"))
        assert "--seeds" in line and "0,1,2" in line, line


# ------------------------------------------------------------------------------------------ file kinds
def test_fewshot_particles_must_be_a_particles_file(tmp_path):
    _prompts(tmp_path / "prompts.safetensors")
    line = _one_line(bmtpt("fewshot", *FAST, "--tasks", "demo_rte", "--shots", "4", "--seeds", "1", "--methods", "bmtpt",
                           "--particles", tmp_path / "prompts.safetensors", "--out", tmp_path / "out"))
    assert "--particles" in line and "prompts" in line and "bmtpt source" in line, line
    assert listing(tmp_path) == ["prompts.safetensors"]


@pytest.mark.parametrize("argv, flag", [
    (["evaluate", "--prompts", "{dir}"], "--prompts"),
    (["export", "--prompts", "{dir}", "--out", "{tmp}/export"], "--prompts"),
    (["fewshot", "--particles", "{dir}", "--methods", "bmtpt", "--out", "{tmp}/out"], "--particles"),
    (["fewshot", "--multitask", "{dir}", "--methods", "multitask", "--out", "{tmp}/out"], "--multitask"),
])
def test_a_directory_where_a_file_belongs_is_named_as_one(argv, flag, tmp_path):
    (tmp_path / "folder").mkdir()
    line = _one_line(bmtpt(*[a.format(dir=tmp_path / "folder", tmp=tmp_path) for a in argv]))
    assert "is a directory" in line and flag in line, line
    assert listing(tmp_path) == ["folder"]


def test_data_dir_must_be_a_directory(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    line = _one_line(bmtpt("source", "--data-dir", tmp_path / "file.txt", "--print-config"))
    assert "--data-dir" in line and "directory" in line


def test_a_preset_that_is_not_text_is_one_line(tmp_path):
    _particles(tmp_path / "p.safetensors")
    line = _one_line(bmtpt("source", "--preset", tmp_path / "p.safetensors", "--print-config"))
    assert "preset" in line and "TOML" in line


# ------------------------------------------------------------------------------- failed runs, reruns
def test_a_failed_probe_leaves_nothing_that_blocks_the_rerun(tmp_path):
    _particles(tmp_path / "p.safetensors")
    out = tmp_path / "f.json"
    common = ["evaluate", "--init", tmp_path / "p.safetensors", "--tasks", "demo_rte", "--seeds", "1", *FAST, "--out", out]
    failed = bmtpt(*common, "--shots", "100000")
    assert failed.exit_code == 2 and "k" in failed.output
    assert listing(tmp_path) == ["p.safetensors"]
    rerun = bmtpt(*common, "--shots", "4")
    assert rerun.exit_code == 0, rerun.output


def test_a_failed_grid_leaves_nothing_that_blocks_the_rerun(tmp_path):
    common = ["fewshot", "--methods", "pt", "--tasks", "demo_rte", "--seeds", "1", *FAST, "--out", tmp_path / "g"]
    failed = bmtpt(*common, "--shots", "100000")
    assert failed.exit_code == 2
    assert listing(tmp_path) == []
    rerun = bmtpt(*common, "--shots", "4")
    assert rerun.exit_code == 0, rerun.output


# -------------------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv, words", [
    (["source", "--particles", "abc"], ["--particles", "abc"]),
    (["source", "--steps", "1.5"], ["--steps", "1.5"]),
    (["source", "--stepz", "3"], ["--stepz", "--steps"]),
    (["fewshot", "--shots"], ["--shots"]),
    (["evaluate", "extra-argument"], ["extra-argument"]),
    (["nosuchcommand"], ["nosuchcommand"]),
    (["source", "--seed", "99999999999999999999999"], ["--seed", "too large"]),
    (["adapt", "--steps", "1" + "0" * 5000], ["--steps", "too large"]),
])
def test_every_usage_error_is_one_line(argv, words):
    line = _one_line(bmtpt(*argv))
    assert line.startswith("error: ") and "--help" in line, line
    assert all(word in line for word in words), line


def test_a_real_process_prints_usage_errors_in_one_line(tmp_path):
    env = os.environ | {"COLUMNS": "60"}
    result = subprocess.run([sys.executable, "-m", "bmtpt_cli", "source", "--steps", "1.5"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
