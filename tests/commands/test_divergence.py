"""Divergence (issue 27 items 7-8, issue 26 item 4): after every step the trained tensors are checked
(finite, and RMS within runtime.divergence.GROWTH_LIMIT × their reference), the run stops before a
bad state is logged or checkpointed, and the advice works: --resume with a lower learning rate.
Nonsense numbers are refused when the settings are read, in one line."""

import json

import pytest
import torch

from bmtpt_cli.runtime.checkpoint import load_checkpoint
from bmtpt_cli.runtime.divergence import GROWTH_LIMIT
from bmtpt_cli.runtime.outputs import RunOutput
from clihelpers import FAST, bmtpt


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # beside progress lines
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def _strict_json(path) -> list[dict]:
    """The log's records, parsed without Python's NaN/Infinity extension (which is not JSON)."""
    def refuse(token):
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def _rms(tensor: torch.Tensor) -> float:
    return float(tensor.double().square().mean().sqrt())


def test_source_lr_1e30_stops_at_its_first_step_with_no_artifact(tmp_path):
    out = tmp_path / "p.safetensors"
    line = _one_error_line(bmtpt("source", "--lr", "1e30", "--steps", "30", "--out", out))
    assert "particles diverged at step 1" in line and "no checkpoint yet" in line and "lower --lr" in line, line
    assert not out.exists() and not RunOutput(out, False, False).checkpoint.exists()
    log = RunOutput(out, False, False).log
    if log.exists():
        _strict_json(log)


def test_source_divergence_names_the_last_good_checkpoint_and_a_lower_lr_resumes(tmp_path):
    """lr 1e5 with a long warm-up moves the particles by ~lr·step per step: over the limit at step 18,
    after the checkpoint of step 16; that checkpoint is good, and resuming it with --lr 0.3 finishes."""
    out = tmp_path / "p.safetensors"
    files = RunOutput(out, False, False)
    argv = ["source", "--steps", "30", "--warmup-steps", "29", "--checkpoint-every", "2", "--out", out]
    line = _one_error_line(bmtpt(*argv, "--lr", "1e5"))
    assert "particles diverged at step 18" in line, line
    assert f"the last good checkpoint is '{files.checkpoint}' (step 16)" in line, line
    assert "resume from it with --resume and a lower --lr (now 100000)" in line, line
    saved = load_checkpoint(files.checkpoint)
    assert saved["step"] == 16 and torch.isfinite(saved["particles"]).all()
    assert _rms(saved["particles"]) <= GROWTH_LIMIT * 1.01  # tiny's embedding RMS is ~1
    assert [r["step"] for r in _strict_json(files.log)] == list(range(1, 18))  # the diverged step is not logged

    raised = _one_error_line(bmtpt(*argv, "--lr", "2e5", "--resume"))
    assert "'lr' was 100000.0, now 200000.0" in raised and "or a lower --lr" in raised, raised

    resumed = bmtpt(*argv, "--lr", "0.3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    records = _strict_json(files.log)
    assert [r["step"] for r in records] == list(range(1, 31))
    assert records[16]["lr_lowered"] == {"step": 16, "lr": {"was": 100000.0, "now": 0.3}}
    assert records[16]["lr"] == pytest.approx(0.3 * 17 / 29) and records[15]["lr"] == pytest.approx(1e5 * 16 / 29)
    assert out.is_file()


@pytest.fixture
def init(tmp_path):
    path = tmp_path / "init.safetensors"
    assert bmtpt("source", *FAST["source"], "--out", path).exit_code == 0
    return path


def test_adapt_checks_the_prompts_so_no_diverged_checkpoint_is_called_good(init, tmp_path):
    """Before: step 1 made NaN prompts, its checkpoint was saved, and step 2's non-finite loss named
    that checkpoint "the last good checkpoint"."""
    out = tmp_path / "prompts.safetensors"
    files = RunOutput(out, False, False)
    argv = ["adapt", "--init", init, "--steps", "10", "--batch-size", "4", "--eval-every", "5", "--warmup-steps", "1",
            "--checkpoint-every", "1", "--out", out]
    line = _one_error_line(bmtpt(*argv, "--lr-shared", "1e30", "--lr-scales", "1e30"))
    assert "diverged at step 1" in line and "no checkpoint yet" in line, line
    assert "lower --lr-shared and --lr-scales (now 1e+30 and 1e+30)" in line, line
    assert not files.checkpoint.exists() and not out.exists()
    assert bmtpt(*argv).exit_code == 0  # the advice: the same run with ordinary learning rates


def test_adapt_resumes_its_last_good_checkpoint_with_lower_learning_rates(init, tmp_path):
    out = tmp_path / "prompts.safetensors"
    files = RunOutput(out, False, False)
    argv = ["adapt", "--init", init, "--steps", "30", "--batch-size", "4", "--eval-every", "10", "--warmup-steps", "29",
            "--checkpoint-every", "2", "--weight-decay", "0", "--out", out]  # decay at lr 1e5 would shrink W
    line = _one_error_line(bmtpt(*argv, "--lr-shared", "1e5", "--lr-scales", "1e5"))
    assert "diverged at step" in line and "the last good checkpoint is" in line, line
    saved = load_checkpoint(files.checkpoint)
    for name, tensor in saved["prompts"].items():
        assert torch.isfinite(tensor).all(), name
    resumed = bmtpt(*argv, "--lr-shared", "0.3", "--lr-scales", "0.04", "--resume")
    assert resumed.exit_code == 0, resumed.output
    records = _strict_json(files.log)
    assert [r["step"] for r in records] == list(range(1, 31))
    (lowered,) = [r["lr_lowered"] for r in records if "lr_lowered" in r]
    assert lowered["step"] == saved["step"]
    assert lowered["lr_shared"] == {"was": 1e5, "now": 0.3} and lowered["lr_scales"] == {"was": 1e5, "now": 0.04}


# (argv, words of the one-line refusal) — each of these ended in a traceback, ran, or trained before
NONSENSE = [
    (["source", "--bandwidth", "inf"], ["--bandwidth", "finite"]),
    (["source", "--lr", "inf"], ["--lr", "finite"]),
    (["source", "--likelihood-scale", "1e39"], ["--likelihood-scale"]),
    (["adapt", "--lr-shared", "1e39"], ["--lr-shared", "at most 3.4e+38"]),
    (["adapt", "--lr-scales", "nan"], ["--lr-scales", "finite"]),
    (["adapt", "--sigma", "1e-30"], ["--sigma"]),
    (["source", "--seed", str(2**63)], ["--seed", "9223372036854775807"]),
    (["source", "--seed", "99999999999999999999999"], ["--seed"]),
    (["adapt", "--seed", "-1"], ["--seed"]),
    (["evaluate", "--shots", "4", "--seeds", "0,99999999999999999999999"], ["--seeds", "2^63 - 1"]),
    (["source", "--device", "meta"], ["--device", "unknown device 'meta'"]),
    (["source", "--device", "mps"], ["--device", "no MPS device"]),
    (["source", "--particles", "0"], ["--particles"]),
    (["source", "--prompt-length", "0"], ["--prompt-length"]),
]


@pytest.mark.parametrize("argv,words", NONSENSE, ids=[" ".join(argv) for argv, _ in NONSENSE])
def test_nonsense_numbers_are_refused_in_one_line_when_the_settings_are_read(argv, words, tmp_path, monkeypatch):
    import torch.backends.mps

    if argv[-1] == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(bmtpt(*argv, "--print-config"))  # refused before anything runs
    for word in words:
        assert word in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_particles_file_without_particles_is_refused_not_blamed_on_the_learning_rate(tmp_path, monkeypatch):
    """Issue 27 item 10: M = 0 gave a NaN mean and "non-finite loss: lower the learning rates"."""
    from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles

    monkeypatch.chdir(tmp_path)
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=8, config={})
    save_particles(tmp_path / "empty.safetensors", torch.zeros(0, 8, 64), tasks=["demo_sentiment"], metadata=metadata)
    line = _one_error_line(bmtpt("adapt", "--init", "empty.safetensors", "--steps", "2"))
    assert "'empty.safetensors' holds no particles (M = 0)" in line and "learning rate" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.safetensors"]
