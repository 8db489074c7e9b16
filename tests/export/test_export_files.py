"""What `run_export` writes (SPEC §8), read back with safetensors and json directly, and what it refuses."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bmtpt_cli.artifacts import PARTICLES, common_metadata, file_sha256, save_particles
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.export import run as export_run
from bmtpt_cli.export.run import run_export
from clihelpers import assert_user_error, listing, snapshot
from exporthelpers import LENGTH, TASKS, WIDTH, export_job, write_prompts

# The keys of SPEC §8 (PEFT 0.10 knows them all; no `peft_version`, `tokenizer_kwargs`, … of newer PEFT).
PROMPT_TUNING_KEYS = {
    "peft_type", "task_type", "base_model_name_or_path", "num_virtual_tokens", "token_dim", "num_transformer_submodules",
    "num_attention_heads", "num_layers", "prompt_tuning_init", "inference_mode", "revision", "prompt_tuning_init_text",
    "tokenizer_name_or_path", "auto_mapping",
}


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.safetensors"
    shared, scales = write_prompts(path)
    return path, shared, scales


def _composed(shared, scales, task):
    a, b = scales[task]
    return shared * a[:, None] * b[None, :]  # W ⊙ (a bᵀ), written out elementwise


# --------------------------------------------------------------------------------- peft
def test_peft_export_is_one_prompt_tuning_adapter_per_task(prompts_file, tmp_path):
    path, shared, scales = prompts_file
    report = run_export(export_job(path, tmp_path / "out"))
    assert report.tasks == list(TASKS) and report.task_ids is None
    assert report.files == ["README.md"] + [f"{task}/{name}" for task in TASKS for name in ("README.md", "adapter_config.json", "adapter_model.safetensors")]
    assert listing(tmp_path / "out") == ["README.md", *TASKS]
    for task in TASKS:
        directory = tmp_path / "out" / task
        assert listing(directory) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
        config = json.loads((directory / "adapter_config.json").read_text())
        assert set(config) == PROMPT_TUNING_KEYS
        assert config["peft_type"] == "PROMPT_TUNING" and config["task_type"] == "SEQ_2_SEQ_LM"
        assert config["num_virtual_tokens"] == LENGTH and config["token_dim"] == WIDTH
        assert config["num_transformer_submodules"] == 1 and config["inference_mode"] is True
        assert (config["num_layers"], config["num_attention_heads"]) == (2, 4)  # the tiny T5's
        assert config["base_model_name_or_path"] == "tiny"
        tensors = load_file(directory / "adapter_model.safetensors")
        assert list(tensors) == ["prompt_embeddings"] and tensors["prompt_embeddings"].dtype == torch.float32
        torch.testing.assert_close(tensors["prompt_embeddings"], _composed(shared, scales, task), rtol=0, atol=1e-6)


def test_multitask_export_is_rank_one_w_and_each_tasks_a_b_in_the_order_asked(prompts_file, tmp_path):
    path, shared, scales = prompts_file
    report = run_export(export_job(path, tmp_path / "out", multitask=True, tasks=["demo_rte", "demo_review"]))
    assert report.task_ids == {"demo_rte": 0, "demo_review": 1}
    out = tmp_path / "out"
    assert listing(out) == ["README.md", "adapter_config.json", "adapter_model.safetensors", "task_ids.json"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert set(config) == PROMPT_TUNING_KEYS | {"num_tasks", "num_ranks"}
    assert config["peft_type"] == "MULTITASK_PROMPT_TUNING" and config["num_tasks"] == 2 and config["num_ranks"] == 1
    assert json.loads((out / "task_ids.json").read_text()) == {"demo_rte": 0, "demo_review": 1}
    tensors = load_file(out / "adapter_model.safetensors")
    assert tensors["prompt_embeddings"].shape == (LENGTH, WIDTH) and torch.equal(tensors["prompt_embeddings"], shared)
    assert tensors["prefix_task_cols"].shape == (2, LENGTH, 1) and tensors["prefix_task_rows"].shape == (2, 1, WIDTH)
    for k, task in enumerate(["demo_rte", "demo_review"]):
        assert torch.equal(tensors["prefix_task_cols"][k, :, 0], scales[task][0])
        assert torch.equal(tensors["prefix_task_rows"][k, 0], scales[task][1])


def test_a_subset_of_tasks_exports_only_those(prompts_file, tmp_path):
    path, *_ = prompts_file
    run_export(export_job(path, tmp_path / "out", tasks=["demo_rte"]))
    assert listing(tmp_path / "out") == ["README.md", "demo_rte"]


# --------------------------------------------------------------------------------- safetensors
def test_safetensors_export_holds_each_composed_prompt_with_metadata(prompts_file, tmp_path):
    path, shared, scales = prompts_file
    run_export(export_job(path, tmp_path / "out", format="safetensors"))
    assert listing(tmp_path / "out") == ["README.md", *(f"{task}.safetensors" for task in TASKS)]
    for task in TASKS:
        file = tmp_path / "out" / f"{task}.safetensors"
        prompt = load_file(file)["prompt_embeddings"]
        assert prompt.shape == (LENGTH, WIDTH) and prompt.dtype == torch.float32
        torch.testing.assert_close(prompt, _composed(shared, scales, task), rtol=0, atol=1e-6)
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata()
        assert metadata["bmtpt.task"] == task and metadata["bmtpt.model"] == "tiny"
        assert metadata["bmtpt.exported_from"] == "prompts.safetensors"
        assert metadata["bmtpt.exported_from_sha256"] == file_sha256(path)
        assert metadata["bmtpt.kind"] == "composed-prompt"  # bmtpt's loaders refuse it as an init, by name


def test_the_same_export_twice_gives_the_same_bytes(prompts_file, tmp_path):
    path, *_ = prompts_file
    run_export(export_job(path, tmp_path / "one", format="safetensors"))
    run_export(export_job(path, tmp_path / "two", format="safetensors"))
    one, two = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert {k: v for k, v in one.items() if k != "README.md"} == {k: v for k, v in two.items() if k != "README.md"}


# --------------------------------------------------------------------------------- model card
def _python_block(card: str) -> str:
    (code,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    return code


def test_model_card_reports_model_tasks_metrics_and_how_it_was_made(prompts_file, tmp_path):
    path, *_ = prompts_file
    run_export(export_job(path, tmp_path / "out", multitask=True))
    card = (tmp_path / "out" / "README.md").read_text()
    assert "library_name: peft" in card
    assert "`tiny` (frozen)" in card and "l = 5 vectors of width d = 64" in card
    assert "| demo_review | 0 |" in card and "| demo_rte | 1 |" in card  # task ids
    assert "| accuracy | 0.6000 |" in card and "| accuracy | 0.7000 |" in card  # dev metrics
    assert "those of step 40" in card
    assert file_sha256(path) in card
    assert "bmtpt adapt --preset adapt-run.toml" in card  # the recorded settings, as a preset
    assert '\n[adapt]\n' in card and '\ninit = "random"\n' in card and "\nsteps = 4\n" in card
    assert f"bmtpt export --prompts {path} --format peft --out {tmp_path / 'out'} --multitask" in card
    assert "trained with 0.1.0, exported with" in card
    assert "`demo_rte sentence1: … sentence2: …`" in card and "`entailment` / `not_entailment`" in card
    assert "PeftModel.from_pretrained" in card and "task_ids=torch.tensor(" in card


@pytest.mark.parametrize("layout", [{}, {"multitask": True}, {"format": "safetensors"}], ids=["peft", "multitask", "safetensors"])
def test_the_cards_code_runs_as_written(prompts_file, tmp_path, monkeypatch, capsys, layout):
    """The snippet of each card loads the export and generates, from where the export was run."""
    path, *_ = prompts_file
    pytest.importorskip("peft")
    monkeypatch.chdir(tmp_path)
    run_export(export_job(Path(path.name), Path("out"), **layout))  # relative paths, as typed in a shell
    card = (tmp_path / "out" / ("demo_review" if not layout else "") / "README.md").read_text()
    exec(compile(_python_block(card), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("[") and printed.rstrip().endswith("]")  # the decoded generations


# --------------------------------------------------------------------------------- refusals
def test_an_existing_non_empty_out_is_kept_without_force_and_replaced_with_it(prompts_file, tmp_path):
    path, *_ = prompts_file
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    before = snapshot(out)
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, out))
    assert "--force" in assert_user_error(excinfo, out)
    assert snapshot(out) == before
    with pytest.raises(BmtptError) as excinfo:  # not a directory bmtpt wrote: not even --force replaces it
        run_export(export_job(path, out, force=True))
    assert "bmtpt did not write" in assert_user_error(excinfo, out)
    assert snapshot(out) == before
    (out / "mine.txt").unlink()
    run_export(export_job(path, out))
    run_export(export_job(path, out, force=True))
    assert listing(out) == ["README.md", *TASKS]
    assert listing(tmp_path) == ["out", "prompts.safetensors"]  # no staging or old directory left


def test_an_empty_out_directory_is_used(prompts_file, tmp_path):
    path, *_ = prompts_file
    (tmp_path / "out").mkdir()
    run_export(export_job(path, tmp_path / "out"))
    assert listing(tmp_path / "out") == ["README.md", *TASKS]


def test_a_failed_export_leaves_the_previous_one_and_no_partial_files(prompts_file, tmp_path, monkeypatch):
    path, *_ = prompts_file
    out = tmp_path / "out"
    run_export(export_job(path, out))
    before = snapshot(out)
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway through the adapters
        return write_adapter(*args, **kwargs)

    write_adapter = export_run.write_adapter
    monkeypatch.setattr(export_run, "write_adapter", fail_second)
    with pytest.raises(KeyboardInterrupt):
        run_export(export_job(path, out, force=True, format="peft"))
    assert snapshot(out) == before
    assert listing(tmp_path) == ["out", "prompts.safetensors"]


def test_an_unknown_task_is_refused_naming_the_tasks_there(prompts_file, tmp_path):
    path, *_ = prompts_file
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, tmp_path / "out", tasks=["demo_rte", "rte"]))
    message = assert_user_error(excinfo, path)
    assert "rte not in" in message and "demo_review, demo_rte" in message and "--tasks" in message
    assert not (tmp_path / "out").exists()


def test_a_particles_file_is_refused_with_the_step_that_makes_prompts(tmp_path):
    path = tmp_path / "particles.safetensors"
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=WIDTH, prompt_length=LENGTH, config={})
    save_particles(path, torch.randn(2, LENGTH, WIDTH), tasks=["demo_nli"], metadata=metadata)
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, tmp_path / "out"))
    assert f"bmtpt adapt --init {path}" in assert_user_error(excinfo, path)


def test_a_missing_prompts_file_is_refused(tmp_path):
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(tmp_path / "nope.safetensors", tmp_path / "out"))
    assert "--prompts" in assert_user_error(excinfo, tmp_path / "nope.safetensors")


def test_out_that_is_a_file_is_refused(prompts_file, tmp_path):
    path, *_ = prompts_file
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, path))
    assert "directory" in assert_user_error(excinfo, path)


# --------------------------------------------------------------------------------- base model
def _config_dir(tmp_path, d_model: int):
    """A local model directory holding only a T5 config.json (no weights: export reads none)."""
    from transformers import T5Config

    directory = tmp_path / f"t5-d{d_model}"
    T5Config(d_model=d_model, num_layers=3, num_heads=2, d_kv=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1).save_pretrained(directory)
    return directory


def test_base_model_is_recorded_from_its_config_without_weights(prompts_file, tmp_path):
    path, *_ = prompts_file
    model = _config_dir(tmp_path, WIDTH)
    run_export(export_job(path, tmp_path / "out", base_model=str(model), tasks=["demo_rte"]))
    config = json.loads((tmp_path / "out" / "demo_rte" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(model)
    assert (config["num_layers"], config["num_attention_heads"]) == (3, 2)
    assert f"`{model}` (frozen); the prompts were trained on `tiny`" in (tmp_path / "out" / "README.md").read_text()


def test_a_base_model_of_another_width_is_refused(prompts_file, tmp_path):
    path, *_ = prompts_file
    model = _config_dir(tmp_path, 32)
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, tmp_path / "out", base_model=str(model)))
    message = assert_user_error(excinfo, path)
    assert "d_model=32" in message and "width 64" in message and "--model" in message
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_files_get_the_usual_permissions(prompts_file, tmp_path):
    path, *_ = prompts_file
    run_export(export_job(path, tmp_path / "out"))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "out" / "demo_rte" / "adapter_config.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_file_whose_width_is_not_its_models_asks_for_the_model(tmp_path):
    path = tmp_path / "prompts.safetensors"
    write_prompts(path, width=32)  # recorded model: tiny (d = 64)
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, tmp_path / "out"))
    assert "pass --model with the model of width 32" in assert_user_error(excinfo, path)


# --------------------------------------------------------------------------------- the recorded command
def test_the_cards_preset_repeats_the_recorded_settings(prompts_file, tmp_path, monkeypatch):
    """Saved as the card says, the preset resolves to exactly the settings the prompts file records."""
    from bmtpt_cli.settings import resolve_settings
    from exporthelpers import CONFIG

    for name in [n for n in os.environ if n.upper().startswith("BMTPT_")]:
        monkeypatch.delenv(name)
    path, *_ = prompts_file
    run_export(export_job(path, tmp_path / "out"))
    card = (tmp_path / "out" / "README.md").read_text()
    (preset,) = re.findall(r"```toml\n(.*?)```", card, flags=re.S)
    (tmp_path / "adapt-run.toml").write_text(preset)
    settings = resolve_settings("adapt", str(tmp_path / "adapt-run.toml"), {})
    assert settings.model_dump(mode="json") == CONFIG
    assert CONFIG["prompt_length"] is None and settings.prompt_length is None  # not the demo preset's 8


def test_out_holding_the_prompts_file_or_the_working_directory_is_refused_even_with_force(prompts_file, tmp_path, monkeypatch):
    path, *_ = prompts_file
    before = snapshot(tmp_path)
    with pytest.raises(BmtptError) as excinfo:
        run_export(export_job(path, tmp_path, force=True))  # would delete the prompts file it exports
    message = assert_user_error(excinfo, tmp_path)  # refused as a directory bmtpt did not write (the CLI says "inside --out" first)
    assert "inside --out" in message or "bmtpt did not write" in message
    monkeypatch.chdir(tmp_path)
    for out in (Path("."), Path("..")):
        with pytest.raises(BmtptError) as excinfo:
            run_export(export_job(path, out, force=True))
        assert "the directory you are in" in str(excinfo.value)
    assert snapshot(tmp_path) == before
