"""Hostile files (issue 27): a model folder with pickled weights.

Each one gives one line and exit code 2, no traceback, and nothing written; nothing is unpickled.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from clihelpers import bmtpt, snapshot


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return lines[0]


def _model_dir(path, d_model: int = 64):
    from transformers import T5Config

    T5Config(d_model=d_model, num_layers=2, num_heads=4, d_kv=16, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1).save_pretrained(path)
    return path


# --------------------------------------------------------------------------------- pickled model weights
class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickled_model_dir(path, *, payload: bool):
    """A T5 folder (config, byte tokenizer) whose weights are only a pickled pytorch_model.bin."""
    from transformers import ByT5Tokenizer

    from bmtpt_cli.runner.model import _build_tiny

    _model_dir(path)
    ByT5Tokenizer().save_pretrained(path)
    if payload:
        (path / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(path.parent / "PWNED")))
    else:
        torch.save(_build_tiny()[0].state_dict(), path / "pytorch_model.bin")


@pytest.mark.parametrize("payload", [True, False], ids=["payload", "plain state dict"])
def test_a_model_folder_with_only_pickled_weights_is_refused_without_unpickling(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _pickled_model_dir(tmp_path / "pickled", payload=payload)
    before = snapshot(tmp_path)
    message = _one_line_error(bmtpt("adapt", "--model", "pickled", "--init", "random", "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"))
    assert "pytorch_model.bin" in message and "safetensors" in message and "'pickled'" in message, message
    assert snapshot(tmp_path) == before and not (tmp_path / "PWNED").exists()


def test_hub_models_are_requested_as_safetensors(monkeypatch):
    import transformers

    from bmtpt_cli.runner import model as model_module

    asked = {}

    class Config:
        is_encoder_decoder = True

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda name, **kw: Config())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **kw: "tokenizer")
    monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_pretrained", lambda name, **kw: asked.update(kw) or "model")
    assert model_module._load_pretrained("org/some-t5") == ("model", "tokenizer")
    assert asked.get("use_safetensors") is True
