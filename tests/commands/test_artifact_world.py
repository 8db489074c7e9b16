"""An artifact carries its world (issue 26, items 2-3): the demo preset stays in the demo world, a command
that reads an artifact takes the artifact's model and input format, or says what differs, or refuses."""

import pytest
import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, save_particles, save_prompts
from clihelpers import bmtpt, toy_particles

TINY_CONFIG = {"model": "tiny", "prompt_length": 8, "taskless": True, "label_style": "words",
               "max_source_length": 256, "max_target_length": 16, "tasks": ["demo_review"]}

pytestmark = pytest.mark.usefixtures("user_shell")


def _tiny_prompts(path="prompts.safetensors", **config):
    """Target prompts of `tiny` for demo_review, trained taskless with label words (or as `config` says)."""
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=8, config=TINY_CONFIG | config)
    scales = {"demo_review": (torch.ones(8), torch.ones(64))}
    save_prompts(path, torch.randn(8, 64) * 0.1, scales, metadata=metadata)
    return path


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in result.output, message
    return message


def _config(result):
    assert result.exit_code == 0, result.output
    return {line.split(" = ")[0]: line for line in result.stdout.splitlines() if " = " in line}


# --------------------------------------------------------------------------------- the demo preset's world
@pytest.mark.parametrize("given, reason", [
    (["--model", "t5-base"], "--model t5-base"),
    (["--model", "./saved-tiny"], "--model ./saved-tiny"),
    (["--tasks", "rte,cb"], "--tasks rte,cb"),
])
def test_a_real_model_or_task_gets_the_built_in_defaults_not_the_demo_preset(given, reason):
    from bmtpt_cli.runner.model import tiny_t5_config

    tiny_t5_config().save_pretrained("saved-tiny")
    shown = _config(bmtpt("adapt", *given, "--init", "random", "--print-config"))
    assert "preset 'demo'" not in "".join(shown.values())
    not_applied = f"# default (demo preset not applied: {reason})"
    assert shown["device"] == f'device = "auto"  {not_applied}'
    assert shown["taskless"] == f"taskless = false  {not_applied}"
    assert shown["max_target_length"] == f"max_target_length = 128  {not_applied}"
    assert shown["steps"] == f"steps = 30000  {not_applied}"


def test_the_demo_chain_keeps_the_demo_preset():
    toy_particles()
    shown = _config(bmtpt("adapt", "--print-config"))
    assert shown["steps"] == "steps = 100  # preset 'demo' key [adapt].steps"
    assert shown["taskless"] == "taskless = true  # from particles.safetensors"
    assert shown["model"] == 'model = "toy"  # from particles.safetensors'


def test_another_model_than_the_artifacts_is_refused_in_one_line():
    toy_particles()
    message = _one_line_error(bmtpt("adapt", "--model", "t5-base", "--print-config"))
    assert "particles.safetensors" in message and "toy" in message and "t5-base" in message
    assert "--init random" in message


def test_an_artifact_of_another_world_takes_its_world_not_the_demo_values():
    _tiny_prompts()
    shown = _config(bmtpt("evaluate", "--print-config"))
    assert shown["model"] == 'model = "tiny"  # from prompts.safetensors'
    assert shown["max_target_length"] == "max_target_length = 16  # from prompts.safetensors"
    assert shown["device"] == 'device = "auto"  # default (demo preset not applied: prompts.safetensors was made with tiny)'


# --------------------------------------------------------------------------------- evaluate takes the prompt's world
def test_evaluate_refuses_another_label_style_than_the_prompts_were_trained_with():
    _tiny_prompts()
    message = _one_line_error(bmtpt("evaluate", "--preset", "tiny", "--label-style", "digits"))
    assert "--label-style digits" in message and "prompts.safetensors" in message and "words" in message


@pytest.mark.parametrize("flag, words", [
    (["--no-taskless"], ["--no-taskless", "taskless = true"]),
    (["--max-source-length", "3"], ["--max-source-length 3", "max_source_length = 256"]),
])
def test_evaluate_says_in_one_line_what_differs_from_the_prompts(flag, words):
    _tiny_prompts()
    result = bmtpt("evaluate", "--preset", "tiny", *flag)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "prompts.safetensors" in warnings[0], result.stderr
    for word in words:
        assert word in warnings[0], warnings[0]


def test_evaluate_takes_the_format_from_the_prompts():
    _tiny_prompts(taskless=True, max_source_length=64)
    shown = _config(bmtpt("evaluate", "--preset", "tiny", "--print-config"))
    assert shown["taskless"] == "taskless = true  # from prompts.safetensors"
    assert shown["max_source_length"] == "max_source_length = 64  # from prompts.safetensors"
    assert shown["prompt_length"] == "prompt_length = 8  # from prompts.safetensors"


def test_a_different_prompt_length_is_refused():
    _tiny_prompts()
    message = _one_line_error(bmtpt("evaluate", "--preset", "tiny", "--prompt-length", "4"))
    assert "prompts.safetensors" in message and "4" in message and "8" in message


def _tiny_particles(path="particles.safetensors", **config):
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=6, config=TINY_CONFIG | config)
    save_particles(path, torch.randn(2, 6, 64) * 0.1, tasks=["demo_sentiment"], metadata=metadata)
    return path


@pytest.mark.parametrize("command", [["fewshot"], ["evaluate", "--shots", "4", "--init", "particles.safetensors"]])
def test_training_from_particles_takes_their_world_and_warns_about_another_label_style(command):
    _tiny_particles(max_source_length=64)
    shown = _config(bmtpt(*command, "--preset", "tiny", "--print-config"))
    assert shown["prompt_length"] == "prompt_length = 6  # from particles.safetensors"
    assert shown["max_source_length"] == "max_source_length = 64  # from particles.safetensors"
    assert shown["taskless"] == "taskless = true  # from particles.safetensors"
    warned = bmtpt(*command, "--preset", "tiny", "--label-style", "digits", "--print-config")
    assert warned.exit_code == 0, warned.output  # the run adapts the prompt to the new targets: said, not refused
    (warning,) = [line for line in warned.stderr.splitlines() if line.startswith("warning:")]
    assert "--label-style digits" in warning and "particles.safetensors" in warning and '"words"' in warning


def test_two_artifacts_of_different_worlds_are_refused():
    _tiny_particles()
    _tiny_particles("multitask.safetensors", taskless=False)
    message = _one_line_error(bmtpt("fewshot", "--preset", "tiny", "--methods", "bmtpt,multitask",
                                    "--multitask", "multitask.safetensors", "--print-config"))
    assert "particles.safetensors" in message and "multitask.safetensors" in message and "taskless" in message


@pytest.mark.parametrize("key, value", [("max_source_length", -3), ("max_target_length", 0), ("label_style", "emoji")])
def test_a_recorded_value_no_run_accepts_is_refused_in_one_line(key, value):
    _tiny_prompts(**{key: value})
    message = _one_line_error(bmtpt("evaluate", "--preset", "tiny", "--print-config"))
    assert "prompts.safetensors" in message and key in message and len(message) < 300, message
