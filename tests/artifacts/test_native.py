"""Artifacts: safetensors round trips, the on-disk format, validation errors.

The on-disk layout is checked with `safetensors.safe_open` directly, not only through bmtpt's own
loader, so a change of format that the loader happens to mirror still shows up here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bmtpt_cli import __version__
from bmtpt_cli.artifacts import (
    PARTICLES,
    PROMPTS,
    check_model_fit,
    common_metadata,
    file_sha256,
    load_particles,
    load_prompts,
    read_kind,
    save_particles,
    save_prompts,
)
from bmtpt_cli.errors import BmtptError
from clihelpers import assert_user_error, listing

CONFIG = {"steps": 40, "lr": 0.3, "tasks": ["demo_nli", "demo_topic"], "out": "particles.safetensors"}
COMMON_KEYS = {
    "bmtpt.kind",
    "bmtpt.format",
    "bmtpt.model",
    "bmtpt.d_model",
    "bmtpt.prompt_length",
    "bmtpt.config",
    "bmtpt.version",
}


def _metadata(kind: str, *, d_model: int = 4, prompt_length: int = 3) -> dict[str, str]:
    return common_metadata(kind=kind, model="tiny", d_model=d_model, prompt_length=prompt_length, config=CONFIG)


def _write_particles(path: Path, shape=(2, 3, 4), *, seed: int = 0) -> torch.Tensor:
    m, l, d = shape
    particles = torch.randn(shape, generator=torch.Generator().manual_seed(seed))  # (M, l, d)
    save_particles(path, particles, tasks=["demo_nli", "demo_topic"], metadata=_metadata(PARTICLES, d_model=d, prompt_length=l))
    return particles


def _write_prompts(path: Path) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(3, 4, generator=g)  # (l, d)
    scales = {
        "rte": (torch.randn(3, generator=g), torch.randn(4, generator=g)),
        "cb": (torch.randn(3, generator=g), torch.randn(4, generator=g)),
    }
    metadata = _metadata(PROMPTS) | {"bmtpt.init": "particles.safetensors", "bmtpt.init_sha256": "0" * 64, "bmtpt.dev_metrics": "{}"}
    save_prompts(path, shared, scales, metadata=metadata)
    return shared, scales


# --------------------------------------------------------------------------------- round trips
def test_particles_round_trip_and_metadata(tmp_path):
    path = tmp_path / "particles.safetensors"
    particles = _write_particles(path)

    loaded, metadata = load_particles(path)
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, particles)
    assert set(metadata) == COMMON_KEYS | {"bmtpt.num_particles", "bmtpt.tasks", "bmtpt.sha256"}
    assert metadata["bmtpt.kind"] == "particles"
    assert metadata["bmtpt.format"] == "1"
    assert metadata["bmtpt.model"] == "tiny"
    assert metadata["bmtpt.d_model"] == "4"
    assert metadata["bmtpt.prompt_length"] == "3"
    assert metadata["bmtpt.num_particles"] == "2"
    assert metadata["bmtpt.tasks"].split(",") == ["demo_nli", "demo_topic"]
    assert json.loads(metadata["bmtpt.config"]) == CONFIG
    assert metadata["bmtpt.version"] == __version__


def test_particles_on_disk_format(tmp_path):
    path = tmp_path / "particles.safetensors"
    particles = _write_particles(path, shape=(5, 7, 6))

    with safe_open(str(path), framework="pt") as handle:
        assert list(handle.keys()) == ["particles"]
        tensor_slice = handle.get_slice("particles")
        assert tensor_slice.get_shape() == [5, 7, 6]
        assert tensor_slice.get_dtype() == "F32"
        assert torch.equal(handle.get_tensor("particles"), particles)
        metadata = handle.metadata()
    assert metadata["bmtpt.kind"] == "particles"
    assert metadata["bmtpt.num_particles"] == "5"
    assert metadata["bmtpt.d_model"] == "6"
    assert metadata["bmtpt.prompt_length"] == "7"
    assert metadata["bmtpt.tasks"] == "demo_nli,demo_topic"
    assert json.loads(metadata["bmtpt.config"]) == CONFIG


def test_particles_are_stored_as_float32_whatever_the_input_dtype(tmp_path):
    path = tmp_path / "particles.safetensors"
    particles = torch.randn(2, 3, 4, dtype=torch.float64)
    save_particles(path, particles, tasks=["a"], metadata=_metadata(PARTICLES))
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_slice("particles").get_dtype() == "F32"
    loaded, _ = load_particles(path)
    assert torch.equal(loaded, particles.float())


def test_prompts_round_trip_and_on_disk_format(tmp_path):
    path = tmp_path / "prompts.safetensors"
    shared, scales = _write_prompts(path)

    with safe_open(str(path), framework="pt") as handle:
        assert set(handle.keys()) == {"shared", "tasks.rte.a", "tasks.rte.b", "tasks.cb.a", "tasks.cb.b"}
        shapes = {name: handle.get_slice(name).get_shape() for name in handle.keys()}
        dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}
        metadata = handle.metadata()
    assert shapes == {"shared": [3, 4], "tasks.rte.a": [3], "tasks.rte.b": [4], "tasks.cb.a": [3], "tasks.cb.b": [4]}
    assert dtypes == {"F32"}
    assert metadata["bmtpt.kind"] == "prompts"
    assert metadata["bmtpt.tasks"] == "rte,cb"

    artifact = load_prompts(path)
    assert artifact.tasks == ["rte", "cb"]
    assert torch.equal(artifact.shared, shared)
    for task, (a, b) in scales.items():
        assert torch.equal(artifact.scales[task][0], a)
        assert torch.equal(artifact.scales[task][1], b)
    assert artifact.metadata["bmtpt.init"] == "particles.safetensors"


def test_prompt_is_shared_times_outer_product_of_scales(tmp_path):
    path = tmp_path / "prompts.safetensors"
    shared, scales = _write_prompts(path)
    artifact = load_prompts(path)

    for task, (a, b) in scales.items():
        expected = torch.empty(3, 4, dtype=torch.float64)
        for i in range(3):
            for j in range(4):
                expected[i, j] = float(shared[i, j]) * float(a[i]) * float(b[j])
        got = artifact.prompt(task)
        assert got.shape == (3, 4)
        assert torch.allclose(got.double(), expected, rtol=1e-6, atol=1e-6)
    # the two tasks share W but not their prompts
    assert not torch.allclose(artifact.prompt("rte"), artifact.prompt("cb"))


def test_read_kind(tmp_path):
    particles, prompts, text = tmp_path / "p.safetensors", tmp_path / "q.safetensors", tmp_path / "t.txt"
    _write_particles(particles)
    _write_prompts(prompts)
    text.write_text("not an artifact\n")
    assert read_kind(particles) == "particles"
    assert read_kind(prompts) == "prompts"
    assert read_kind(text) is None
    assert read_kind(tmp_path / "missing.safetensors") is None


# --------------------------------------------------------------------------------- errors on load
@pytest.mark.parametrize("loader", [load_particles, load_prompts])
def test_missing_file(tmp_path, loader):
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(BmtptError) as excinfo:
        loader(path)
    assert "not found" in assert_user_error(excinfo, path)


@pytest.mark.parametrize(
    "content",
    [os.urandom(300), b"hello, this is plain text and not safetensors at all\n" * 4, b"", b"\x08\x00\x00\x00"],
    ids=["random-bytes", "text", "empty", "short-header"],
)
@pytest.mark.parametrize("loader", [load_particles, load_prompts])
def test_not_a_safetensors_file(tmp_path, loader, content):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(BmtptError) as excinfo:
        loader(path)
    assert "safetensors" in assert_user_error(excinfo, path)


@pytest.mark.parametrize("shape", [(2, 3, 4), (4, 16, 32)], ids=["cut-in-header", "cut-in-data"])
def test_truncated_file(tmp_path, shape):
    path = tmp_path / "particles.safetensors"
    _write_particles(path, shape=shape)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    assert_user_error(excinfo, path)


def test_prompts_file_loaded_as_particles(tmp_path):
    path = tmp_path / "prompts.safetensors"
    _write_prompts(path)
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    message = assert_user_error(excinfo, path)
    assert "prompts" in message and "particles" in message


def test_particles_file_loaded_as_prompts(tmp_path):
    path = tmp_path / "particles.safetensors"
    _write_particles(path)
    with pytest.raises(BmtptError) as excinfo:
        load_prompts(path)
    message = assert_user_error(excinfo, path)
    assert "prompts" in message and "particles" in message


@pytest.mark.parametrize("metadata", [None, {"producer": "someone else"}], ids=["no-metadata", "foreign-metadata"])
@pytest.mark.parametrize("loader", [load_particles, load_prompts])
def test_safetensors_without_bmtpt_metadata(tmp_path, loader, metadata):
    path = tmp_path / "foreign.safetensors"
    save_file({"particles": torch.zeros(2, 3, 4), "shared": torch.zeros(3, 4)}, str(path), metadata=metadata)
    with pytest.raises(BmtptError) as excinfo:
        loader(path)
    assert "not a bmtpt artifact" in assert_user_error(excinfo, path)


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"particles": torch.zeros(2, 3, 4)}, str(path), metadata=_metadata(PARTICLES) | {"bmtpt.format": "99"})
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    assert "99" in assert_user_error(excinfo, path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_particles_on_disk(tmp_path, bad):
    path = tmp_path / "particles.safetensors"
    particles = torch.zeros(2, 3, 4)
    particles[1, 2, 3] = bad
    save_file({"particles": particles}, str(path), metadata=_metadata(PARTICLES))  # bypasses bmtpt's own refusal
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    assert "NaN or Inf" in assert_user_error(excinfo, path)


def test_non_finite_prompt_scale_on_disk(tmp_path):
    path = tmp_path / "prompts.safetensors"
    b = torch.ones(4)
    b[0] = float("nan")
    metadata = _metadata(PROMPTS) | {"bmtpt.tasks": "rte"}
    save_file({"shared": torch.ones(3, 4), "tasks.rte.a": torch.ones(3), "tasks.rte.b": b}, str(path), metadata=metadata)
    with pytest.raises(BmtptError) as excinfo:
        load_prompts(path)
    message = assert_user_error(excinfo, path)
    assert "tasks.rte.b" in message


def test_prompts_file_with_misshapen_scales(tmp_path):
    path = tmp_path / "prompts.safetensors"
    save_prompts(path, torch.ones(3, 4), {"rte": (torch.ones(5), torch.ones(4))}, metadata=_metadata(PROMPTS))
    with pytest.raises(BmtptError) as excinfo:
        load_prompts(path)
    assert "tasks.rte.a/b" in assert_user_error(excinfo, path)


def test_particles_file_without_a_three_dimensional_tensor(tmp_path):
    path = tmp_path / "flat.safetensors"
    save_file({"particles": torch.zeros(3, 4)}, str(path), metadata=_metadata(PARTICLES))
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    assert_user_error(excinfo, path)


# --------------------------------------------------------------------------------- check_model_fit
def test_check_model_fit_accepts_a_matching_artifact(tmp_path):
    path = tmp_path / "particles.safetensors"
    _write_particles(path, shape=(2, 7, 13))
    _, metadata = load_particles(path)
    check_model_fit(path, metadata, d_model=13, prompt_length=7)
    check_model_fit(path, metadata, d_model=13, prompt_length=None)  # no length asked for: any length fits


def test_check_model_fit_other_d_model(tmp_path):
    path = tmp_path / "particles.safetensors"
    _write_particles(path, shape=(2, 7, 13))
    _, metadata = load_particles(path)
    with pytest.raises(BmtptError) as excinfo:
        check_model_fit(path, metadata, d_model=512, prompt_length=7)
    message = assert_user_error(excinfo, path)
    assert "d_model=13" in message and "d_model=512" in message
    assert "tiny" in message  # names the model the artifact was made for


def test_check_model_fit_other_prompt_length(tmp_path):
    path = tmp_path / "particles.safetensors"
    _write_particles(path, shape=(2, 7, 13))
    _, metadata = load_particles(path)
    with pytest.raises(BmtptError) as excinfo:
        check_model_fit(path, metadata, d_model=13, prompt_length=100)
    message = assert_user_error(excinfo, path)
    assert re.search(r"\b7\b", message) and re.search(r"\b100\b", message), message
    assert "--prompt-length" in message


# --------------------------------------------------------------------------------- refusing to save


def test_saving_nan_particles_refuses_and_leaves_no_file(tmp_path):
    path = tmp_path / "particles.safetensors"
    particles = torch.zeros(2, 3, 4)
    particles[0, 0, 0] = float("nan")
    with pytest.raises(BmtptError) as excinfo:
        save_particles(path, particles, tasks=["a"], metadata=_metadata(PARTICLES))
    assert "NaN or Inf" in assert_user_error(excinfo, path)
    assert not path.exists()
    assert listing(tmp_path) == []


def test_saving_inf_prompts_keeps_the_previous_file(tmp_path):
    path = tmp_path / "prompts.safetensors"
    _write_prompts(path)
    before = path.read_bytes()
    with pytest.raises(BmtptError):
        save_prompts(path, torch.ones(3, 4), {"rte": (torch.full((3,), float("inf")), torch.ones(4))}, metadata=_metadata(PROMPTS))
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["prompts.safetensors"]


# --------------------------------------------------------------------------------- file_sha256
@pytest.mark.parametrize("size", [0, 5, (1 << 20) * 2 + 12345], ids=["empty", "small", "over-one-chunk"])
def test_file_sha256(tmp_path, size):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(size))
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_sha256_tells_files_apart(tmp_path):
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _write_particles(first, seed=0)
    _write_particles(second, seed=1)
    assert file_sha256(first) != file_sha256(second)


def test_equal_content_gives_equal_bytes_in_separate_processes(tmp_path):
    """safetensors orders metadata by a per-process hash; bmtpt's files must not depend on it."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles\n"
        "meta = common_metadata(kind=PARTICLES, model='tiny', d_model=4, prompt_length=3, config={'b': 1, 'a': 2})\n"
        "save_particles(sys.argv[1], torch.arange(24.0).view(2, 3, 4), tasks=['x', 'y'], metadata=meta)\n"
    )
    paths = [tmp_path / f"p{i}.safetensors" for i in range(3)]
    for path in paths:
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120)
    assert len({path.read_bytes() for path in paths}) == 1
    particles, metadata = load_particles(paths[0])
    assert torch.equal(particles, torch.arange(24.0).view(2, 3, 4))
    assert metadata["bmtpt.tasks"] == "x,y"
    with safe_open(str(paths[0]), framework="pt") as handle:  # still a valid safetensors file
        assert handle.get_tensor("particles").shape == (2, 3, 4)
