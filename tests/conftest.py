"""Shared fixtures: everything offline, the `tiny` T5 built from a config, demo data made by bmtpt."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported anywhere: nothing may try the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Without --preset the tests run on `tiny` (the random-weight model and the demo tasks, seconds per chain),
# in this process and in the CLI subprocesses some tests start; a user's default, `demo`, is the toy world.
os.environ["BMTPT_PRESET"] = "tiny"

import pytest  # noqa: E402



@pytest.fixture(scope="session")
def tiny():
    """The frozen `tiny` model and its byte tokenizer (built once per test session)."""
    from bmtpt_cli.runner.model import load_frozen_t5

    return load_frozen_t5("tiny")


@pytest.fixture(scope="session")
def runner(tiny):
    """A FrozenT5Runner over the `tiny` model."""
    from bmtpt_cli.runner.runner import FrozenT5Runner

    model, tokenizer = tiny
    return FrozenT5Runner(model, tokenizer, max_source_length=128, max_target_length=16)


@pytest.fixture
def demo_examples():
    """A few train examples of two demo tasks."""
    from bmtpt_cli.data.registry import resolve_tasks

    return {task.name: task.examples("train")[:6] for task in resolve_tasks("demo_sentiment,demo_nli")}


@pytest.fixture
def user_shell(monkeypatch, tmp_path):
    """A user's shell: no BMTPT_* variable, so the default preset is `demo`; an empty working directory."""
    for name in list(os.environ):
        if name.upper().startswith("BMTPT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
