"""`source --per-task` at library level: one prompts file per task, equal to a single-task run, resume.

The tests that train (a few tiny-model runs of 3 steps each) carry the `integration` marker.
"""

import contextlib
import os
import shutil
import signal

import pytest
import torch

from bmtpt_cli.artifacts import load_particles, load_prompts
from bmtpt_cli.artifacts.task_prompts import read_task_prompts, task_prompt_path
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.checkpoint import Interrupted
from bmtpt_cli.runtime.progress import Progress
from bmtpt_cli.settings import build, resolve_settings
from bmtpt_cli.jobs.source import SourceJob, run_source

TASKS = ["demo_sentiment", "demo_nli"]
SMALL = {"steps": 3, "prompt_length": 4, "examples_per_task": 2, "warmup_steps": 1, "checkpoint_every": 2, "seed": 7}


def _settings(**flags):
    return resolve_settings("source", None, {**SMALL, **flags})


def _job(out, **flags):
    settings = _settings(per_task=True, tasks=",".join(TASKS), out=out, **flags)
    return build(SourceJob, settings, settings=settings.model_dump(mode="json"))


class Bars(Progress):
    """Records the bars drawn; `stop_at=(description prefix, step)` sends SIGINT at that step."""

    def __init__(self, stop_at=None):
        self.bars, self.notes, self.stop_at = [], [], stop_at

    @contextlib.contextmanager
    def bar(self, description, total):
        self.bars.append(description)

        def update(completed, info=""):
            if self.stop_at and description.startswith(self.stop_at[0]) and completed == self.stop_at[1]:
                os.kill(os.getpid(), signal.SIGINT)

        yield update

    def note(self, message):
        self.notes.append(message)


integration = pytest.mark.integration


@pytest.fixture(scope="module")
def per_task(tmp_path_factory):
    """One per-task run over two demo tasks; returns its directory."""
    directory = tmp_path_factory.mktemp("per_task") / "prompts"
    bars = Bars()
    assert run_source(_job(directory), bars) == directory
    assert bars.bars == ["source demo_sentiment [1/2]", "source demo_nli [2/2]"]  # which task of how many
    return directory


@integration
def test_one_prompts_file_per_task_that_read_task_prompts_reads(per_task):
    prompts = read_task_prompts(per_task)
    assert list(prompts) == sorted(TASKS)
    for task, found in prompts.items():
        assert found.path == task_prompt_path(per_task, task)
        artifact = load_prompts(found.path)
        assert artifact.tasks == [task] and artifact.shared.shape == (4, 64)
        a, b = artifact.scales[task]
        assert torch.equal(a, torch.ones(4)) and torch.equal(b, torch.ones(64))
        assert torch.equal(found.prompt, artifact.shared)  # W ⊙ 1 1ᵀ is exactly the trained prompt
        assert artifact.metadata["bmtpt.method"] == "source --per-task"
        assert (per_task / f"{task}.safetensors.log.jsonl").is_file() and not (per_task / f"{task}.safetensors.ckpt").exists()
    assert not torch.equal(prompts["demo_nli"].prompt, prompts["demo_sentiment"].prompt)


@integration
def test_each_task_prompt_equals_a_single_task_one_particle_run(per_task, tmp_path):
    for task in TASKS[1:]:  # the second task: each task starts again from the seed
        settings = _settings(tasks=task, particles=1, out=tmp_path / f"{task}.safetensors")
        out = run_source(build(SourceJob, settings, settings=settings.model_dump(mode="json")))
        particles, _ = load_particles(out)
        assert particles.shape == (1, 4, 64)
        assert torch.equal(load_prompts(task_prompt_path(per_task, task)).shared, particles[0]), task  # bit for bit


@integration
def test_resume_keeps_finished_tasks_and_trains_only_the_missing_one(per_task, tmp_path):
    directory = tmp_path / "prompts"
    shutil.copytree(per_task, directory)
    kept = task_prompt_path(directory, "demo_sentiment").read_bytes()
    task_prompt_path(directory, "demo_nli").unlink()
    bars = Bars()
    run_source(_job(directory, resume=True), bars)
    assert bars.bars == ["source demo_nli [2/2]"]
    assert any("demo_sentiment [1/2]: kept" in note for note in bars.notes)
    assert task_prompt_path(directory, "demo_sentiment").read_bytes() == kept
    again = load_prompts(task_prompt_path(directory, "demo_nli")).shared
    assert torch.equal(again, load_prompts(task_prompt_path(per_task, "demo_nli")).shared)


@integration
def test_an_interrupted_task_resumes_from_its_checkpoint_to_the_same_prompt(per_task, tmp_path):
    directory = tmp_path / "prompts"
    with pytest.raises(Interrupted):
        run_source(_job(directory), Bars(stop_at=("source demo_nli", 2)))
    assert task_prompt_path(directory, "demo_sentiment").is_file()
    assert (directory / "demo_nli.safetensors.ckpt").is_file() and not task_prompt_path(directory, "demo_nli").exists()
    bars = Bars()
    run_source(_job(directory, resume=True), bars)
    assert bars.bars == ["source demo_nli [2/2]"]
    for task in TASKS:
        expected = load_prompts(task_prompt_path(per_task, task)).shared
        assert torch.equal(load_prompts(task_prompt_path(directory, task)).shared, expected), task


@integration
def test_resume_refuses_a_finished_task_made_with_other_settings(per_task, tmp_path):
    directory = tmp_path / "prompts"
    shutil.copytree(per_task, directory)
    with pytest.raises(BmtptError, match="setting 'lr' was 0.3, now 0.4"):  # only a lower one is allowed
        run_source(_job(directory, resume=True, lr=0.4))
    with pytest.raises(BmtptError, match="setting 'seed' was 7, now 1"):
        run_source(_job(directory, resume=True, seed=1))
    run_source(_job(directory, resume=True, lr=0.2))  # after a divergence: the finished tasks are kept


def test_an_existing_directory_needs_resume_or_force(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "demo_nli.safetensors").write_bytes(b"")
    with pytest.raises(BmtptError, match="already holds files: pass --resume .* --force"):
        run_source(_job(tmp_path / "full"))
    with pytest.raises(BmtptError, match="--resume given but '.*missing' does not exist"):
        run_source(_job(tmp_path / "missing", resume=True))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BmtptError, match="is a file: --per-task writes a directory"):
        run_source(_job(tmp_path / "file"))
    with pytest.raises(BmtptError, match="output directory .* does not exist"):
        run_source(_job(tmp_path / "no" / "such"))


def test_per_task_settings_one_particle_and_a_default_directory():
    settings = _settings(per_task=True)  # the demo preset asks for 3 particles
    assert settings.particles == 1 and "per-task" in settings.origin("particles")
    assert str(settings.out) == "source-prompts"
    assert str(_settings(per_task=True, out="mine").out) == "mine"
    with pytest.raises(BmtptError, match="--per-task trains one particle per task, but --particles asks for particles = 3"):
        _settings(per_task=True, particles=3)
    with pytest.raises(BmtptError, match="--per-task trains each task alone, but --sample-tasks"):
        _settings(per_task=True, sample_tasks=1)
    assert _settings(per_task=True, particles=1).particles == 1
