"""Hostile files (issue 27): a model folder with pickled weights, data files that are not UTF-8, links out of --data-dir.

Each one gives one line and exit code 2, no traceback, and nothing written; nothing is unpickled, and an
error about a data file names the file and line with at most a short, escaped excerpt of its contents.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from clihelpers import bmtpt, one_line_error, snapshot


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
    message = one_line_error(bmtpt("adapt", "--model", "pickled", "--init", "random", "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"))
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


# --------------------------------------------------------------------------------- data files
RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


def _rte_rows(count: int, label: str = "entailment") -> str:
    return "".join(f"{i}\tA premise {i}.\tA hypothesis {i}.\t{label}\n" for i in range(count))


def _adapt_on(data_dir: str, task: str = "rte"):
    return bmtpt("adapt", "--tasks", task, "--init", "random", "--steps", "1", "--warmup-steps", "0", "--data-dir", data_dir, "--out", "t.safetensors")


def test_a_tsv_with_invalid_utf8_names_the_file_line_and_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "glue" / "RTE"
    folder.mkdir(parents=True)
    good = (RTE_HEADER + _rte_rows(3)).encode()
    (folder / "train.tsv").write_bytes(good + b"3\tbad \xff byte\thyp\tentailment\n")
    (folder / "dev.tsv").write_bytes(good)
    before = snapshot(tmp_path)
    message = one_line_error(_adapt_on("data"))
    assert "train.tsv" in message and "UTF-8" in message and "line 5" in message and f"byte {len(good) + 6}" in message, message
    assert snapshot(tmp_path) == before


def test_a_jsonl_with_invalid_utf8_names_the_file_line_and_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "superglue" / "CB"
    folder.mkdir(parents=True)
    good = "".join(json.dumps({"premise": f"p {i}", "hypothesis": f"h {i}", "label": "neutral", "idx": i}) + "\n" for i in range(4))
    (folder / "train.jsonl").write_bytes(good.encode() + b'{"premise": "\xc3\x28"}\n')
    (folder / "val.jsonl").write_bytes(good.encode())
    before = snapshot(tmp_path)
    message = one_line_error(_adapt_on("data", "cb"))
    assert "train.jsonl" in message and "UTF-8" in message and "line 5" in message and f"byte {len(good) + 13}" in message, message
    assert snapshot(tmp_path) == before


SECRET = "SECRET-TOKEN-1234"


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symlink_leading_out_of_the_data_dir_is_refused_without_echoing_it(link, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside" / "RTE"
    outside.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        (outside / name).write_text(RTE_HEADER + _rte_rows(3) + f"3\tp\th\t{SECRET}\n")
    (tmp_path / "data" / "glue").mkdir(parents=True)
    if link == "folder":
        (tmp_path / "data" / "glue" / "RTE").symlink_to(outside, target_is_directory=True)
    else:
        (tmp_path / "data" / "glue" / "RTE").mkdir()
        (tmp_path / "data" / "glue" / "RTE" / "dev.tsv").write_text(RTE_HEADER + _rte_rows(3))
        (tmp_path / "data" / "glue" / "RTE" / "train.tsv").symlink_to(outside / "train.tsv")
    before = snapshot(tmp_path)
    result = _adapt_on("data")
    message = one_line_error(result)
    assert SECRET not in result.output and "link" in message and "outside --data-dir" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("label", ["X" * 5000, "bad\x1b[2J\nlabel"], ids=["long", "control characters"])
def test_a_bad_field_is_shown_as_a_short_escaped_excerpt(label, tmp_path, monkeypatch):
    """A link that stays inside --data-dir is read; the error about its value shows a short, escaped excerpt."""
    monkeypatch.chdir(tmp_path)
    store, folder = tmp_path / "data" / "store", tmp_path / "data" / "glue" / "RTE"
    store.mkdir(parents=True)
    folder.mkdir(parents=True)
    (store / "train.tsv").write_text(RTE_HEADER + _rte_rows(3) + f"3\tp\th\t{label.replace(chr(10), ' ')}\n")
    (folder / "dev.tsv").write_text(RTE_HEADER + _rte_rows(3))
    (folder / "train.tsv").symlink_to(os.path.relpath(store / "train.tsv", folder))
    message = one_line_error(_adapt_on("data"))
    assert "train.tsv' line 5" in message and "unknown label" in message and len(message) < 300, message
    assert "\x1b" not in message and "X" * 100 not in message, message


# --------------------------------------------------------------------------------- any error stays one line
@pytest.mark.parametrize("name", ["a\nb.safetensors", "x\x1b[2J" + "y" * 200 + ".safetensors"], ids=["newline", "escape and long"])
def test_an_error_naming_a_hostile_path_is_still_one_short_line(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = one_line_error(bmtpt("adapt", "--init", name, "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"))
    assert "not found" in message and "\x1b" not in message and len(message) < 600, message
    assert list(tmp_path.iterdir()) == []
