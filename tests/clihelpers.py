"""Helpers the tests share: running the bmtpt CLI in-process, checking one-line errors and what is left on disk."""

from pathlib import Path

from typer.testing import CliRunner

from bmtpt_cli.app import app

FAST = {  # the demo preset, cut down so each command takes a second or two
    "source": ["--steps", "6", "--particles", "2", "--checkpoint-every", "2", "--warmup-steps", "1"],
    "adapt": ["--steps", "4", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "1"],
}


def bmtpt(*args: str):
    """Invoke `bmtpt ARGS` and return click's Result (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes, to check that nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_user_error(excinfo, path: Path) -> str:
    """The one-line message of a raised BmtptError that names `path`."""
    message = str(excinfo.value)
    assert "\n" not in message, f"error message spans several lines: {message!r}"
    assert str(path) in message, f"error message does not name the file: {message!r}"
    return message


def listing(directory: Path) -> list[str]:
    """The names in a directory, sorted (to see that nothing was left behind); the `.bmtpt-output`
    marker of a directory bmtpt wrote as a whole is left out (tests/commands/test_output_safety.py checks it)."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".bmtpt-output")


def one_line_error(result) -> str:
    """The one `error:` line of a CLI result that failed as a user error (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return lines[0]


TOY_TASKS = ["toy_tool_right", "toy_mood_on", "toy_animal_yes", "toy_food_true"]
TOY_CONFIG = {"model": "toy", "prompt_length": 8, "taskless": True, "label_style": "words",
              "max_source_length": 256, "max_target_length": 4, "device": "cpu", "tasks": TOY_TASKS}
"""The demo preset's source settings, as its particles record them."""


def toy_particles(path="particles.safetensors"):
    """What README command 1 (the demo's `bmtpt source`) leaves: toy-world particles."""
    import torch

    from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles

    metadata = common_metadata(kind=PARTICLES, model="toy", d_model=128, prompt_length=8, config=TOY_CONFIG)
    save_particles(path, torch.randn(3, 8, 128) * 0.1, tasks=TOY_TASKS, metadata=metadata)
    return path


def starting_prompt(init):
    """What an `adapt` call starts from, as a tensor `(l, d)`: the init tensor, or a prompt module's W
    (the grid and `evaluate --shots` pass their method's module), for spies on `adapt`."""
    import torch

    return init.clone() if isinstance(init, torch.Tensor) else init.shared.detach().clone()


def adapt_retrieving(method: str, directory, out, task: str = "demo_nli"):
    """`bmtpt adapt --method METHOD --init DIRECTORY` on one task in two steps (a retrieval method's smoke run);
    returns the result, the prompts file read back and its `bmtpt.init_details`."""
    import json

    from bmtpt_cli.artifacts import load_prompts

    result = bmtpt("adapt", "--method", method, "--init", directory, "--tasks", task, "--retrieval-steps", "2",
                   "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "0", "--out", out)
    assert result.exit_code == 0, result.output
    prompts = load_prompts(out)
    return result, prompts, json.loads(prompts.metadata["bmtpt.init_details"])
