"""What a newcomer meets in the first hour: no collisions, schedules that fit, help and config to act on, traceable results."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from bmtpt_cli.settings import resolve_settings
from clihelpers import FAST, bmtpt

pytestmark = pytest.mark.integration


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """source → adapt in tmp_path with the README's default file names."""
    monkeypatch.chdir(tmp_path)
    for command in ("source", "adapt"):
        result = bmtpt(command, *FAST[command])
        assert result.exit_code == 0, result.output
    return tmp_path


def test_the_readme_sequence_evaluate_then_the_probe_does_not_collide(chain):
    first = bmtpt("evaluate")
    assert first.exit_code == 0, first.output
    probe = bmtpt("evaluate", "--shots", "4", "--init", "particles.safetensors", "--tasks", "demo_rte", "--seeds", "0,1",
                  "--steps", "2", "--batch-size", "4")
    assert probe.exit_code == 0, probe.output
    assert (chain / "results.json").is_file() and (chain / "fewshot-4.json").is_file()
    assert "wrote fewshot-4.json" in probe.stdout


def test_a_warm_up_from_the_preset_is_scaled_to_a_short_run_and_an_explicit_one_is_refused(tmp_path):
    settings = resolve_settings("source", "glue6", {"steps": 5})
    assert settings.warmup_steps == 0 and "500 of 100000" in settings.notes[0]
    demo = resolve_settings("adapt", None, {"steps": 3})  # demo: warm-up 6 of 60 steps → 0 of 3
    assert demo.warmup_steps == 0
    assert resolve_settings("adapt", None, {"steps": 30}).warmup_steps == 6  # shorter than the run: kept
    refused = bmtpt("source", "--steps", "5", "--warmup-steps", "5", "--out", tmp_path / "p.safetensors")
    assert refused.exit_code == 2 and "--warmup-steps below 5" in refused.stderr
    shown = bmtpt("source", "--preset", "glue6", "--steps", "5", "--print-config")
    assert "note: warm-up of 500 steps" in shown.stderr and "warmup_steps = 0  # scaled from 500" in shown.stdout


def test_print_config_names_each_values_origin_and_is_a_usable_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("BMTPT_LR", "0.2")
    shown = bmtpt("source", "--particles", "2", "--print-config")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "particles = 2  # --particles" in lines
    assert "lr = 0.2  # BMTPT_LR" in lines
    assert "steps = 40  # preset 'tiny' key [source].steps" in lines
    assert "bandwidth" in shown.stdout and not list(tmp_path.iterdir())  # nothing run, nothing written
    monkeypatch.delenv("BMTPT_LR")
    (tmp_path / "mine.toml").write_text(shown.stdout)
    again = resolve_settings("source", str(tmp_path / "mine.toml"), {})
    assert again.particles == 2 and again.lr == 0.2 and again.steps == 40


def test_help_shows_defaults_and_negatable_flags(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per option, so the words are not wrapped apart
    result = bmtpt("source", "--help")
    assert result.exit_code == 0
    assert "(default: 0.3)" in result.output and "--no-grad-checkpointing" in result.output
    flag_lines = [line for line in result.output.splitlines() if "--" in line and "--help" not in line]
    assert not [line for line in flag_lines if "<bool>" in line] and "--print-config" in result.output


def test_artifacts_and_results_say_what_produced_them(chain):
    result = bmtpt("evaluate")
    assert result.exit_code == 0, result.output
    with safe_open(str(chain / "prompts.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    provenance = json.loads(metadata["bmtpt.provenance"])
    assert provenance["versions"]["torch"] and provenance["versions"]["transformers"] and provenance["device"] == "cpu"
    assert provenance["created"].endswith("+00:00")
    assert json.loads(metadata["bmtpt.dev_metric_names"]) == {"demo_review": "accuracy", "demo_rte": "accuracy"}
    assert metadata["bmtpt.prior"].startswith("N(")
    assert json.loads(metadata["bmtpt.data"])["sources"]["demo_rte"]
    report = json.loads((chain / "results.json").read_text())
    import hashlib

    assert report["prompts_sha256"] == hashlib.sha256((chain / "prompts.safetensors").read_bytes()).hexdigest()
    assert report["settings"]["decode"] == "rank" and report["provenance"]["versions"]["bmtpt"]
    assert report["results"][0]["rules"] == {"rank_score": "sum"}


def test_a_random_init_records_that_no_prior_was_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = bmtpt("adapt", *FAST["adapt"], "--init", "random")
    assert result.exit_code == 0, result.output
    with safe_open(str(tmp_path / "prompts.safetensors"), framework="pt") as handle:
        assert handle.metadata()["bmtpt.prior"].startswith("none: the init has no source posterior")


def test_the_result_table_shows_every_metric_and_says_when_scores_are_chance(chain):
    result = bmtpt("evaluate", "--force")
    assert result.exit_code == 0, result.output
    assert "random weights" in result.stdout and "chance" in result.stdout
    assert "other metrics" in result.stdout


def test_progress_names_the_kernel_figures(tmp_path):
    result = bmtpt("source", *FAST["source"], "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 0
    assert "kernel bandwidth h" in result.stderr and "mean particle distance" in result.stderr


def test_local_inputs_are_checked_before_data_and_every_missing_task_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing_init = bmtpt("adapt", "--init", "nothere.safetensors", "--tasks", "rte,cb")  # would need the hub
    assert missing_init.exit_code == 2 and "init file 'nothere.safetensors' not found" in missing_init.stderr
    (tmp_path / "data" / "glue" / "MNLI").mkdir(parents=True)
    (tmp_path / "data" / "glue" / "MNLI" / "train.sample.tsv").write_text("x\n")
    (tmp_path / "data" / "glue" / "QQP").mkdir()
    result = bmtpt("source", "--tasks", "mnli,qqp", "--data-dir", "data", "--steps", "2", "--warmup-steps", "0")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "mnli" in message and "qqp" in message and "2 task splits cannot be read" in message
    assert "found train.sample.tsv, which bmtpt does not read" in message


@pytest.mark.parametrize("kind", ["missing", "file", "gpt2"])
def test_model_errors_say_the_real_cause(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == "gpt2":
        from transformers import GPT2Config

        GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    (tmp_path / "weights.bin").write_bytes(b"x")
    model = {"missing": "/no/such/model", "file": "weights.bin", "gpt2": "./gpt2"}[kind]
    expected = {"missing": "no such model directory", "file": "is a file, not a model directory",
                "gpt2": "not a T5 (encoder-decoder) model: found GPT2Config"}[kind]
    result = bmtpt("source", "--model", model, "--steps", "2", "--warmup-steps", "0")
    assert result.exit_code == 2 and expected in " ".join(result.stderr.split())


def test_no_library_warnings_in_a_run_and_no_empty_log_when_a_run_fails_early(tmp_path, monkeypatch):
    import warnings

    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bmtpt("source", *FAST["source"]).exit_code == 0
        result = bmtpt("adapt", *FAST["adapt"])
    assert result.exit_code == 0
    assert "past_key_values" not in result.stderr
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    failed = bmtpt("source", "--model", "/no/such/model", "--out", "other.safetensors", "--steps", "2", "--warmup-steps", "0")
    assert failed.exit_code == 2
    assert not (tmp_path / "other.safetensors.log.jsonl").exists() and not (tmp_path / "other.safetensors.lock").exists()


def test_a_run_that_cannot_fit_in_memory_is_refused_before_allocating_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = bmtpt("source", "--particles", "1000000", "--steps", "2", "--warmup-steps", "0")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "needs about" in message and "are available" in message and "--particles" in message
    assert list(tmp_path.iterdir()) == []  # no lock, no empty log, no checkpoint
