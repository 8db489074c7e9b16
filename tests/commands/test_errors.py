"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing changed on disk."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles
from clihelpers import FAST, bmtpt, snapshot


def _particles(path, *, d_model=64, length=8, values=None):
    particles = torch.randn(2, length, d_model) if values is None else values
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=d_model, prompt_length=length, config={})
    save_particles(path, particles, tasks=["demo_sentiment"], metadata=metadata)


def _truncated_particles(path):
    _particles(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _preset(text):
    return lambda path: path.write_text(text)


def _nan_particles(path):
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=8, config={})
    save_file({"particles": torch.full((2, 8, 64), float("nan"))}, str(path), metadata=metadata | {"bmtpt.num_particles": "2"})


# (name, files to create in the working directory, argv, words the message must contain)
CASES = [
    ("init file absent", {}, ["adapt", "--init", "missing.safetensors"], ["missing.safetensors", "not found"]),
    ("init not safetensors", {"notes.safetensors": b"just text"}, ["adapt", "--init", "notes.safetensors"], ["not a readable safetensors"]),
    ("prompts file absent", {}, ["evaluate", "--prompts", "nope.safetensors"], ["nope.safetensors", "not found"]),
    ("wrong kind", {"p.safetensors": _particles}, ["evaluate", "--prompts", "p.safetensors"], ["expected prompts"]),
    ("d_model mismatch", {"wide.safetensors": lambda p: _particles(p, d_model=32)}, ["adapt", "--init", "wide.safetensors"], ["d_model=32", "d_model=64"]),
    ("prompt length mismatch", {"p.safetensors": _particles}, ["adapt", "--init", "p.safetensors", "--prompt-length", "5"], ["length 8", "--prompt-length 5"]),
    ("non-finite values", {"nan.safetensors": _nan_particles}, ["adapt", "--init", "nan.safetensors"], ["NaN or Inf"]),
    ("unknown task", {}, ["source", "--tasks", "demo_sentimnt"], ["demo_sentimnt", "did you mean demo_sentiment"]),
    ("hub unreachable offline", {}, ["adapt", "--tasks", "rte", "--init", "random"], ["nyu-mll/glue (rte)", "--data-dir"]),
    ("data dir without the task", {"data/README": b"empty"}, ["adapt", "--tasks", "rte", "--init", "random", "--data-dir", "data"], ["no files for task rte", "data"]),
    ("unknown preset", {}, ["source", "--preset", "nope"], ["unknown preset 'nope'", "demo"]),
    ("glue6 offline without --data-dir", {}, ["source", "--preset", "glue6"], ["nyu-mll/glue (mnli)", "--data-dir"]),
    ("output exists", {"particles.safetensors": b"precious"}, ["source"], ["already exists", "--force"]),
    ("truncated artifact", {"cut.safetensors": _truncated_particles}, ["adapt", "--init", "cut.safetensors"], ["cut.safetensors", "not a readable safetensors"]),
    ("preset does not parse", {"bad.toml": _preset("model = \"tiny\"\n[source\n")}, ["source", "--preset", "bad.toml"], ["bad.toml", "does not parse"]),
    ("preset unknown key", {"bad.toml": _preset("[source]\nparticels = 3\n")}, ["source", "--preset", "bad.toml"], ["[source].particels"]),
    ("preset wrong type", {"bad.toml": _preset("[source]\nparticles = \"many\"\n")}, ["source", "--preset", "bad.toml"], ["[source].particles", "'many'", "integer"]),
    ("unknown option value", {}, ["evaluate", "--decode", "beam"], ["--decode", "'beam'", "rank", "generate"]),
    ("zero particles", {}, ["source", "--particles", "0"], ["--particles"]),
    ("negative steps", {}, ["adapt", "--steps", "-5"], ["--steps", "-5"]),
    ("zero shots", {}, ["evaluate", "--shots", "0"], ["--shots"]),
    ("non-positive learning rate", {}, ["source", "--lr", "0"], ["--lr"]),
    ("output directory missing", {}, ["source", "--out", "no/such/dir/p.safetensors"], ["no/such/dir", "does not exist"]),
    ("few-shot resume without cells", {"p.safetensors": _particles}, ["evaluate", "--shots", "4", "--init", "p.safetensors", "--resume"], ["--resume", "no cells"]),
    ("non-positive sigma", {}, ["adapt", "--sigma", "0"], ["--sigma"]),
    ("resume without checkpoint", {}, ["source", "--resume"], ["no checkpoint"]),
]


@pytest.mark.parametrize("name,files,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(name, files, argv, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for filename, content in files.items():
        if callable(content):
            content(tmp_path / filename)
        else:
            (tmp_path / filename).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / filename).write_bytes(content)
    before = snapshot(tmp_path)
    result = bmtpt(*argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert snapshot(tmp_path) == before


def test_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bmtpt_cli", "adapt", "--init", "missing.safetensors"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "missing.safetensors" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_exactly_the_working_commands():
    result = bmtpt("--help")
    assert result.exit_code == 0
    from bmtpt_cli.app import COMMANDS

    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and line[2] not in " -"}
    assert set(COMMANDS) == {"source", "adapt", "evaluate", "tasks", "export", "transfer-matrix", "fewshot", "project", "reproduce"}
    assert listed == set(COMMANDS), listed  # every registered command, and nothing else


def test_every_command_has_help_from_the_settings_descriptions():
    from bmtpt_cli.settings import SourceSettings, help_for

    result = bmtpt("source", "--help")
    assert result.exit_code == 0
    flattened = " ".join(result.stdout.replace("│", " ").split())  # wrapped help text, box borders dropped
    assert "--particles" in flattened and help_for(SourceSettings, "particles")[:30] in flattened


def test_unknown_option_is_a_usage_error():
    result = bmtpt("source", "--particels", "3")
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_fast_settings_are_valid():  # guards the FAST flags the chain tests rely on
    assert bmtpt("source", *FAST["source"], "--help").exit_code == 0
