"""Checksums (issue 27, item 9): a changed bit in an artifact or a checkpoint is detected on load, in
one line naming the file and what to do, never silently accepted; and what a loader cannot use (a
tensor of integers or booleans, a width other than the metadata's) is refused in one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, load_particles, load_prompts, save_particles, save_prompts
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.checkpoint import capture_rng, load_checkpoint, save_checkpoint
from clihelpers import assert_user_error

FLIPS = 50


def _metadata(kind: str, *, d_model: int = 16, prompt_length: int = 8) -> dict[str, str]:
    return common_metadata(kind=kind, model="tiny", d_model=d_model, prompt_length=prompt_length, config={"lr": 0.3})


def _particles_file(path: Path) -> None:
    particles = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(0))  # (M, l, d)
    save_particles(path, particles, tasks=["demo_nli"], metadata=_metadata(PARTICLES))


def _prompts_file(path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    scales = {"rte": (torch.randn(8, generator=g), torch.randn(16, generator=g))}
    metadata = _metadata(PROMPTS) | {"bmtpt.init": "random", "bmtpt.init_sha256": "", "bmtpt.dev_metrics": "{}"}
    save_prompts(path, torch.randn(8, 16, generator=g), scales, metadata=metadata)


def _load_artifact(path: Path):
    if "particles" in path.name:
        particles, metadata = load_particles(path)
        return {"particles": particles}, metadata
    artifact = load_prompts(path)
    return {"shared": artifact.shared, **{f"{t}.{i}": s[i] for t, s in artifact.scales.items() for i in (0, 1)}}, artifact.metadata


def _data_start(data: bytes) -> int:
    """Where a safetensors file's tensor bytes begin (after the 8-byte length and the JSON header)."""
    return 8 + int.from_bytes(data[:8], "little")


def _flipped(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make", [_particles_file, _prompts_file], ids=["particles", "prompts"])
def test_every_bit_flip_in_an_artifacts_tensor_data_is_detected(tmp_path, make):
    path = tmp_path / f"{make.__name__.strip('_').split('_')[0]}.safetensors"
    make(path)
    good = path.read_bytes()
    rng = random.Random(27)
    missed = []
    for _ in range(FLIPS):
        offset, bit = rng.randrange(_data_start(good), len(good)), rng.randrange(8)
        path.write_bytes(_flipped(good, offset, bit))
        try:
            _load_artifact(path)
        except BmtptError as exc:
            message = str(exc)
            assert "\n" not in message and str(path) in message, message
            assert "checksum" in message and "regenerate" in message, message
        else:
            missed.append((offset, bit))
    assert missed == [], f"{len(missed)} of {FLIPS} bit flips in the tensor data were accepted"


@pytest.mark.parametrize("make", [_particles_file, _prompts_file], ids=["particles", "prompts"])
def test_a_bit_flip_anywhere_in_an_artifact_is_refused_or_changes_nothing(tmp_path, make):
    path = tmp_path / f"{make.__name__.strip('_').split('_')[0]}.safetensors"
    make(path)
    good = path.read_bytes()
    tensors, metadata = _load_artifact(path)
    rng = random.Random(28)
    silent = []
    for _ in range(FLIPS):
        offset, bit = rng.randrange(len(good)), rng.randrange(8)
        path.write_bytes(_flipped(good, offset, bit))
        try:
            loaded, loaded_metadata = _load_artifact(path)
        except BmtptError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            continue
        if not (_same(loaded, tensors) and loaded_metadata == metadata):
            silent.append((offset, bit))
    assert silent == [], f"{len(silent)} of {FLIPS} bit flips changed what was loaded without an error"


def test_an_artifact_without_a_checksum_still_loads(tmp_path):
    """Files written before checksums existed (an older bmtpt) load with the check skipped."""
    path = tmp_path / "particles.safetensors"
    particles = torch.randn(2, 8, 16)
    save_file({"particles": particles}, str(path), metadata=_metadata(PARTICLES) | {"bmtpt.num_particles": "2"})
    loaded, metadata = load_particles(path)
    assert torch.equal(loaded, particles) and "bmtpt.sha256" not in metadata


def test_bmtpt_artifacts_carry_a_checksum(tmp_path):
    _particles_file(tmp_path / "particles.safetensors")
    _, metadata = load_particles(tmp_path / "particles.safetensors")
    assert len(metadata["bmtpt.sha256"]) == 64


def _checkpoint(path: Path) -> dict:
    """A checkpoint like a source run's: particles, Adam state, schedule, RNG, step, fingerprint."""
    generator = torch.Generator().manual_seed(3)
    particles = torch.nn.Parameter(torch.randn(3, 8, 16, generator=generator))
    optimizer = torch.optim.AdamW([particles], lr=0.1)
    particles.grad = torch.randn(3, 8, 16, generator=generator)
    optimizer.step()
    state = {"particles": particles.detach().clone(), "optimizer": optimizer.state_dict(), "rng": capture_rng(generator),
             "step": 3, "fingerprint": {"lr": 0.1, "tasks": ["demo_nli"]}}
    save_checkpoint(path, state)
    return load_checkpoint(path)


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def test_a_bit_flip_anywhere_in_a_checkpoint_is_refused_or_changes_nothing(tmp_path):
    path = tmp_path / "run.ckpt"
    expected = _checkpoint(path)
    good = path.read_bytes()
    rng = random.Random(29)
    silent, detected = [], 0
    for _ in range(FLIPS):
        offset, bit = rng.randrange(len(good)), rng.randrange(8)
        path.write_bytes(_flipped(good, offset, bit))
        try:
            loaded = load_checkpoint(path)
        except BmtptError as exc:
            message = str(exc)
            assert "\n" not in message and str(path) in message and "delete it" in message, message
            detected += 1
            continue
        if not _equal(loaded, expected):
            silent.append((offset, bit))
    assert silent == [], f"{len(silent)} of {FLIPS} bit flips changed the checkpoint without an error"
    assert detected > FLIPS // 2  # most of a checkpoint is tensor data, the rest zip headers


def test_a_bit_flip_in_a_checkpoints_tensor_data_is_detected(tmp_path):
    """Every flip inside the stored records (the tensors and the pickle) is caught by their CRC."""
    import zipfile

    path = tmp_path / "run.ckpt"
    _checkpoint(path)
    good = path.read_bytes()
    spans = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():  # a record's bytes follow its 30-byte local header, name and extra field
            header = good[info.header_offset: info.header_offset + 30]
            start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
            spans.append((start, start + info.compress_size))
    rng = random.Random(30)
    missed = []
    for _ in range(FLIPS):
        start, end = rng.choice([span for span in spans if span[1] > span[0]])
        offset, bit = rng.randrange(start, end), rng.randrange(8)
        path.write_bytes(_flipped(good, offset, bit))
        try:
            load_checkpoint(path)
        except BmtptError:
            continue
        missed.append((offset, bit))
    assert missed == [], f"{len(missed)} of {FLIPS} bit flips in a checkpoint's records were accepted"


# ------------------------------------------------------------------------------------------ tensors a loader cannot use
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool], ids=["int64", "bool"])
def test_particles_of_integers_or_booleans_are_refused(tmp_path, dtype):
    path = tmp_path / "particles.safetensors"
    save_file({"particles": torch.ones(2, 8, 16, dtype=dtype)}, str(path), metadata=_metadata(PARTICLES) | {"bmtpt.num_particles": "2"})
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    assert str(dtype).replace("torch.", "") in assert_user_error(excinfo, path)


@pytest.mark.parametrize("shape", [(2, 8, 12), (2, 5, 16)], ids=["width", "length"])
def test_particles_whose_shape_disagrees_with_the_metadata_are_refused(tmp_path, shape):
    path = tmp_path / "particles.safetensors"
    save_file({"particles": torch.ones(shape)}, str(path), metadata=_metadata(PARTICLES) | {"bmtpt.num_particles": "2"})
    with pytest.raises(BmtptError) as excinfo:
        load_particles(path)
    message = assert_user_error(excinfo, path)
    assert "d_model 16" in message or "prompt_length 8" in message, message


def test_prompts_whose_width_disagrees_with_the_metadata_are_refused(tmp_path):
    path = tmp_path / "prompts.safetensors"
    tensors = {"shared": torch.ones(8, 12), "tasks.rte.a": torch.ones(8), "tasks.rte.b": torch.ones(12)}
    save_file(tensors, str(path), metadata=_metadata(PROMPTS) | {"bmtpt.tasks": "rte"})
    with pytest.raises(BmtptError) as excinfo:
        load_prompts(path)
    assert "d_model 16" in assert_user_error(excinfo, path)
