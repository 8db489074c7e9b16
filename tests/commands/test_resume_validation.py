"""What `--resume` reads is checked before it is used (issue 27, items 6 and 10): an optimizer state
that does not fit the parameters never reaches the fused AdamW kernel, hand-edited or foreign
checkpoint fields are refused in one line, and a resume whose step log was deleted is refused.

Every resume runs in a subprocess: before the checks, a misshapen Adam state made the fused kernel
write out of bounds (SIGABRT), which must not take pytest down with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bmtpt_cli.runtime.loop import TrainingLoop
from bmtpt_cli.runtime.outputs import RunOutput
from clihelpers import bmtpt

SOURCE = ["source", "--steps", "4", "--particles", "2", "--checkpoint-every", "1", "--warmup-steps", "1"]
ADAPT = ["adapt", "--steps", "4", "--eval-every", "2", "--checkpoint-every", "1", "--batch-size", "4", "--warmup-steps", "1"]


def _stop_after(monkeypatch, step: int) -> None:
    """Make the next in-process run stop (as on SIGTERM) after `step`, leaving its checkpoint."""
    original = TrainingLoop.end_step

    def end_step(self, record, method_state):
        if self.step == step:
            self._stop.requested = "SIGTERM"
        original(self, record, method_state)

    monkeypatch.setattr(TrainingLoop, "end_step", end_step)


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    """An interrupted source run and an interrupted adapt run: (argv, out, checkpoint bytes) by command."""
    root = tmp_path_factory.mktemp("unfinished")
    runs = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert bmtpt("source", "--steps", "2", "--particles", "2", "--warmup-steps", "1",
                     "--out", root / "init.safetensors").exit_code == 0
        _stop_after(monkeypatch, 2)
        for command, argv in (("source", SOURCE), ("adapt", [*ADAPT, "--init", str(root / "init.safetensors")])):
            out = root / f"{command}.safetensors"
            result = bmtpt(*argv, "--out", out)
            assert result.exit_code == 130, result.output
            output = RunOutput(out, False, True)
            runs[command] = (argv, out, output.checkpoint.read_bytes(), output.log.read_bytes())
    return runs


def _copy_run(unfinished, command: str, tmp_path: Path) -> tuple[list[str], Path, Path]:
    """A fresh copy of an interrupted run in tmp_path: (argv, out, checkpoint path)."""
    argv, out, checkpoint, log = unfinished[command]
    out = tmp_path / out.name  # the adapt run's --init stays where it was: its path is in the fingerprint
    output = RunOutput(out, False, True)
    output.checkpoint.write_bytes(checkpoint)
    output.log.write_bytes(log)
    return argv, out, output.checkpoint


def _edit(path: Path, change) -> None:
    """Rewrite a checkpoint with `change(state)` applied, as a hand edit or another version would."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, path)


def _resume(argv: list[str], out: Path, cwd: Path, *, isolated: bool = True) -> subprocess.CompletedProcess:
    """`bmtpt ARGV --out OUT --resume`, in a subprocess when what it reads could crash the interpreter."""
    if not isolated:  # in-process (fast): for edits that raise at worst a Python exception
        result = bmtpt(*argv, "--out", out, "--resume")
        stderr = result.stderr + ("Traceback: " + repr(result.exception) if result.exit_code not in (0, 2) else "")
        return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, stderr)
    return subprocess.run(
        [sys.executable, "-m", "bmtpt_cli", *argv, "--out", str(out), "--resume"], cwd=cwd, capture_output=True,
        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    message = lines[-1]
    for word in words:
        assert word in message, message
    return message


def _state(state: dict) -> dict:
    """The Adam state of the (first) parameter."""
    return state["optimizer"]["state"][0]


# ------------------------------------------------------------------------------------------ item 6
def _wrong_shape_exp_avg(state):
    _state(state)["exp_avg"] = torch.zeros(3)


def _wrong_shape_exp_avg_sq(state):
    _state(state)["exp_avg_sq"] = torch.zeros(_state(state)["exp_avg_sq"].numel() * 2)


def _int_exp_avg(state):
    _state(state)["exp_avg"] = _state(state)["exp_avg"].long()


def _missing_exp_avg_sq(state):
    del _state(state)["exp_avg_sq"]


def _extra_parameter_state(state):
    state["optimizer"]["state"][7] = dict(_state(state))


def _string_lr(state):
    state["optimizer"]["param_groups"][0]["lr"] = "fast"


def _fewer_groups(state):
    state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"][:0]


def _vector_step(state):
    _state(state)["step"] = torch.zeros(5)


OPTIMIZER_CASES = {
    "exp_avg of the wrong shape": _wrong_shape_exp_avg,
    "exp_avg_sq of the wrong size": _wrong_shape_exp_avg_sq,
    "exp_avg of integers": _int_exp_avg,
    "exp_avg_sq missing": _missing_exp_avg_sq,
    "state of a parameter that does not exist": _extra_parameter_state,
    "lr a string": _string_lr,
    "no parameter groups": _fewer_groups,
    "step a vector": _vector_step,
}


RESUME_EACH = """
import json, os, sys
from typer.testing import CliRunner
from bmtpt_cli.app import app
for job in json.loads(sys.argv[1]):
    print(json.dumps({"case": job["case"]}), flush=True)  # a case that crashes the interpreter is the last named
    os.chdir(job["cwd"])
    result = CliRunner().invoke(app, job["argv"])
    print(json.dumps({"case": job["case"], "exit": result.exit_code, "stderr": result.stderr}), flush=True)
"""


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_a_misfitting_optimizer_state_is_refused_before_any_kernel_sees_it(unfinished, command, tmp_path):
    # One interpreter for all cases (each a --resume in process), apart from pytest's: before the checks,
    # a misfitting Adam state made the fused kernel write out of bounds and abort the process.
    jobs, checkpoints = [], {}
    for number, (case, change) in enumerate(OPTIMIZER_CASES.items()):
        folder = tmp_path / f"case-{number}"
        folder.mkdir()
        argv, out, checkpoint = _copy_run(unfinished, command, folder)
        _edit(checkpoint, change)
        jobs.append({"case": case, "cwd": str(folder), "argv": [*argv, "--out", str(out), "--resume"]})
        checkpoints[case] = checkpoint
    done = subprocess.run([sys.executable, "-c", RESUME_EACH, json.dumps(jobs)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    results = {r["case"]: r for r in records if "exit" in r}
    assert done.returncode == 0 and len(results) == len(jobs), (
        f"the process ended with {done.returncode} during case {records[-1]['case'] if records else '?'}: {done.stderr[-2000:]}")
    for case, result in results.items():
        message = _assert_one_line_error(subprocess.CompletedProcess([], result["exit"], "", result["stderr"]),
                                         str(checkpoints[case]))
        assert "optimizer" in message and ("delete it" in message or "--force" in message), (case, message)


# ------------------------------------------------------------------------------------------ item 10
def _set(key, value):
    def change(state):
        state[key] = value
    return change


def _drop(key):
    def change(state):
        del state[key]
    return change


def _particles_width(state):
    state["particles"] = state["particles"][..., :-1].clone()


def _particles_long(state):
    state["particles"] = state["particles"].long()


def _prompts_width(state):
    state["prompts"]["shared"] = state["prompts"]["shared"][:, :-1].clone()


FIELD_CASES = {
    "step 1000 of 4": ("both", _set("step", 1000), "step"),
    "step -5": ("both", _set("step", -5), "step"),
    "step 10.5": ("both", _set("step", 10.5), "step"),
    "step a string": ("both", _set("step", "2"), "step"),
    "no step": ("both", _drop("step"), "step"),
    "no optimizer": ("both", _drop("optimizer"), "optimizer"),
    "no rng": ("both", _drop("rng"), "rng"),
    "rng of another kind": ("both", _set("rng", {"torch": 5}), "rng"),
    "fingerprint a list": ("both", _set("fingerprint", [1, 2]), "fingerprint"),
    "scheduler a string": ("both", _set("scheduler", "linear"), "scheduler"),
    "lr_changes a string": ("both", _set("lr_changes", "lowered"), "lr_changes"),
    "particles one narrower": ("source", _particles_width, "particles"),
    "particles of integers": ("source", _particles_long, "particles"),
    "no particles": ("source", _drop("particles"), "particles"),
    "prompts one narrower": ("adapt", _prompts_width, "prompts"),
    "no best prompts": ("adapt", _drop("best_prompts"), "best_prompts"),
    "best score a string": ("adapt", _set("best_score", "high"), "best_score"),
    "best step 99": ("adapt", _set("best_step", 99), "best_step"),
}


@pytest.mark.parametrize(("case", "command"), [
    (case, command) for case, (which, _, _) in FIELD_CASES.items() for command in ("source", "adapt") if which in ("both", command)
])
def test_a_hand_edited_or_foreign_checkpoint_is_a_one_line_error(unfinished, command, case, tmp_path):
    _, change, word = FIELD_CASES[case]
    argv, out, checkpoint = _copy_run(unfinished, command, tmp_path)
    _edit(checkpoint, change)
    message = _assert_one_line_error(_resume(argv, out, tmp_path, isolated=False), str(checkpoint))
    assert word in message, message


def test_an_untouched_copy_resumes(unfinished, tmp_path):
    """The copies the cases above edit resume fine when left alone (so the refusals are the edits')."""
    argv, out, checkpoint = _copy_run(unfinished, "source", tmp_path)
    result = _resume(argv, out, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.is_file() and not checkpoint.exists()


def test_resume_after_the_step_log_was_deleted_is_refused(unfinished, tmp_path):
    argv, out, checkpoint = _copy_run(unfinished, "source", tmp_path)
    log = RunOutput(out, False, True).log
    log.unlink()
    message = _assert_one_line_error(_resume(argv, out, tmp_path, isolated=False), str(log))
    assert "--force" in message, message
    assert checkpoint.is_file() and not log.exists() and not out.exists()  # nothing changed


@pytest.mark.parametrize("content", [b'{"loss": 1.0}\n{"step": 2, "loss": 1.0}\n', b'{"step": 1}\n\xff\xfe{"step": 2}\n',
                                     b'{"step": 2}\n{"step": 1}\n', b'{"step": "1"}\n{"step": 2}\n'],
                         ids=["a line without step", "invalid UTF-8", "out of order", "step a string"])
def test_a_damaged_step_log_is_refused_on_resume(unfinished, tmp_path, content):
    argv, out, checkpoint = _copy_run(unfinished, "source", tmp_path)
    log = RunOutput(out, False, True).log
    log.write_bytes(content)
    _assert_one_line_error(_resume(argv, out, tmp_path, isolated=False), str(log))
    assert log.read_bytes() == content


# ------------------------------------------------------------------------------------------ item 10: the fingerprint
def _resume_in_process(unfinished, command: str, tmp_path: Path, *extra: str):
    argv, out, checkpoint = _copy_run(unfinished, command, tmp_path)
    return bmtpt(*argv, *extra, "--out", out, "--resume"), checkpoint


@pytest.mark.parametrize(("command", "extra", "setting"), [
    ("source", ["--chunk-sequences", "1"], "chunk_sequences"),
    ("adapt", ["--chunk-sequences", "1"], "chunk_sequences"),
    ("adapt", ["--eval-tokens", "64"], "eval_tokens"),
])
def test_resume_refuses_other_chunking_or_evaluation_budget(unfinished, tmp_path, command, extra, setting):
    result, checkpoint = _resume_in_process(unfinished, command, tmp_path, *extra)
    assert result.exit_code == 2, result.output
    assert f"setting '{setting}'" in result.stderr and str(checkpoint) in result.stderr


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_resume_refuses_a_checkpoint_of_another_bmtpt_version(unfinished, tmp_path, command):
    argv, out, checkpoint = _copy_run(unfinished, command, tmp_path)
    _edit(checkpoint, lambda state: state["fingerprint"].update(bmtpt_version="0.0.1"))
    result = bmtpt(*argv, "--out", out, "--resume")
    assert result.exit_code == 2, result.output
    assert "setting 'bmtpt_version' was '0.0.1'" in result.stderr


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_resume_refuses_when_the_data_changed(unfinished, tmp_path, command, monkeypatch):
    """The examples behind the run changed (an edited file under --data-dir, a new hub revision):
    the settings are the same, the data's hash is not."""
    from bmtpt_cli.data.config import DataConfig

    original = DataConfig.examples

    def edited(self, task, split):
        examples = original(self, task, split)
        return [dataclasses.replace(examples[0], target=examples[0].target + " changed"), *examples[1:]]

    monkeypatch.setattr(DataConfig, "examples", edited)
    result, checkpoint = _resume_in_process(unfinished, command, tmp_path)
    assert result.exit_code == 2, result.output
    assert "setting 'data_sha256'" in result.stderr and str(checkpoint) in result.stderr


def test_a_scheduler_field_named_like_a_method_is_refused_a_plain_one_from_another_torch_kept(unfinished, tmp_path):
    argv, out, checkpoint = _copy_run(unfinished, "source", tmp_path)
    good = checkpoint.read_bytes()
    _edit(checkpoint, lambda state: state["scheduler"].update(step=3))  # would shadow LRScheduler.step
    message = _assert_one_line_error(_resume(argv, out, tmp_path, isolated=False), str(checkpoint))
    assert "scheduler" in message and "step" in message, message
    checkpoint.write_bytes(good)
    _edit(checkpoint, lambda state: state["scheduler"].update(verbose=False))  # an older torch's field
    result = _resume(argv, out, tmp_path, isolated=False)
    assert result.returncode == 0, result.stderr


def test_a_changed_setting_is_named_before_the_checkpoint_is_judged_against_the_run(unfinished, tmp_path):
    # Another --particles also changes the optimizer state's shapes: the message names the setting, not a misfit.
    argv, out, checkpoint = _copy_run(unfinished, "source", tmp_path)
    changed = [*argv[: argv.index("--particles") + 1], "3", *argv[argv.index("--particles") + 2 :]]
    message = _assert_one_line_error(_resume(changed, out, tmp_path, isolated=False), "particles")
    assert "setting 'particles' was 2, now 3" in message and "does not fit" not in message, message
