"""Checkpoints and step logs: RNG states round-trip, damaged files are user errors, torn logs recover."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.checkpoint import (
    StepLog,
    capture_rng,
    check_fingerprint,
    load_checkpoint,
    read_jsonl_records,
    restore_rng,
    save_checkpoint,
)


def _draws(generator: torch.Generator) -> tuple:
    return (torch.rand(3).tolist(), torch.rand(2, generator=generator).tolist(), random.random(), float(np.random.rand()))


def test_rng_states_survive_a_checkpoint_file(tmp_path):
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(1), random.seed(2), np.random.seed(3)
    _draws(generator)  # move every stream away from its seed
    save_checkpoint(tmp_path / "run.ckpt", {"rng": capture_rng(generator), "step": 4})
    expected = _draws(generator)
    _draws(generator)  # and further still
    state = load_checkpoint(tmp_path / "run.ckpt")  # weights_only=True: plain tensors and values only
    restore_rng(state["rng"], generator)
    assert _draws(generator) == expected and state["step"] == 4


def test_a_damaged_or_missing_checkpoint_is_a_one_line_user_error(tmp_path):
    (tmp_path / "bad.ckpt").write_bytes(b"not a torch file")
    for path, words in ((tmp_path / "bad.ckpt", "cannot be read"), (tmp_path / "none.ckpt", "no checkpoint")):
        with pytest.raises(BmtptError) as excinfo:
            load_checkpoint(path)
        assert words in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_fingerprint_mismatch_names_the_setting_both_ways(tmp_path):
    check_fingerprint(tmp_path, {"lr": 0.3}, {"lr": 0.3})
    with pytest.raises(BmtptError, match="'steps' was None, now 5"):
        check_fingerprint(tmp_path, {"lr": 0.3}, {"lr": 0.3, "steps": 5})


def test_step_log_keeps_records_up_to_the_resumed_step_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "run.log.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    assert [r["step"] for r in read_jsonl_records(path)] == [1, 2, 3, 4, 5]
    with StepLog(path, resume_step=3) as log:
        log.write({"step": 4, "again": True})
    assert [r["step"] for r in read_jsonl_records(path)] == [1, 2, 3, 4]
    with StepLog(path, resume_step=None) as log:  # a fresh run starts an empty log
        log.write({"step": 1})
    assert read_jsonl_records(path) == [{"step": 1}]
    StepLog(None, resume_step=None).write({"step": 1})  # a non-main process logs nothing


def test_a_full_disk_at_the_first_record_leaves_no_empty_step_log(tmp_path, monkeypatch):
    import builtins
    import errno

    from bmtpt_cli.runtime import checkpoint

    class FullDisk:
        """A file whose writes fail as on a device with no space left."""

        def __init__(self, handle):
            self.handle = handle

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            self.handle.close()

    real_open = builtins.open
    monkeypatch.setattr(checkpoint, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    path = tmp_path / "p.safetensors.log.jsonl"
    log = checkpoint.StepLog(path, resume_step=None)
    with pytest.raises(OSError):
        log.write({"step": 1, "loss": 0.5})
    assert not path.exists()
