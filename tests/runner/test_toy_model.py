"""The shipped toy T5s of the toy world (`toy`, d 128, and `toy-wide`, d 192): their hashes, offline loading, T5's
tokenizer conventions, and that each is pretrained (the third world's `toy3`: tests/runner/test_toy3_model.py)."""

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch

from bmtpt_cli.data import toyworld
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner import model as model_module
from bmtpt_cli.runner.model import TOY_MODELS, load_frozen_t5, model_config
from bmtpt_cli.runner.runner import IGNORE_INDEX, FrozenT5Runner

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pretrain_toy.py"


WIDTHS = {"toy": 128, "toy-wide": 192}


@pytest.fixture(scope="module", params=list(WIDTHS))
def toy(request):
    return load_frozen_t5(request.param)


@pytest.mark.parametrize("name", list(WIDTHS))
def test_weights_hash_matches_the_record_and_the_checkpoint_is_small(name):
    folder = TOY_MODELS[name]
    recorded = (folder / "SHA256").read_text().split()
    assert recorded[1] == "model.safetensors"
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == recorded[0]
    shipped = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert shipped <= 20 * 2**20


def test_loads_offline_frozen_in_eval_mode(toy):
    model, tokenizer = toy
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 10_000_000
    name = next(name for name, width in WIDTHS.items() if width == model.config.d_model)
    assert model_config(name).d_model == model.config.d_model
    assert len(tokenizer) == model.config.vocab_size


def test_tokenizer_follows_t5_conventions_and_knows_every_word(toy):
    _, tokenizer = toy
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer("does the text mention a tool ? answer yes or no . text: a dog").input_ids
    assert ids[-1] == 1 and 2 not in ids and len(ids) == 17  # 16 words and punctuation marks, then </s>
    vocab = tokenizer.get_vocab()
    assert set(toyworld.vocabulary()) <= set(vocab)
    assert tokenizer.decode(tokenizer("right").input_ids, skip_special_tokens=True) == "right"


def test_runner_labels_end_with_eos(toy):
    model, tokenizer = toy
    runner = FrozenT5Runner(model, tokenizer, max_source_length=64, max_target_length=4)
    labels = runner.encode_targets(["yes", "off"])
    assert labels.tolist() == [[tokenizer.convert_tokens_to_ids("yes"), 1], [tokenizer.convert_tokens_to_ids("off"), 1]]
    assert (labels != IGNORE_INDEX).all()


@torch.no_grad()
def _instructed_accuracy(model, tokenizer, name: str, count: int = 100) -> float:
    design, task = toyworld.DESIGN[name], toyworld.TOY_TASKS[name]
    examples = task.examples("test", taskless=True)[:count]
    enc = tokenizer([f"{design.instruction} {e.source}" for e in examples], padding=True, return_tensors="pt")
    scores = []
    for word in task.label_words:
        labels = torch.tensor([[tokenizer.convert_tokens_to_ids(word), 1]]).repeat(len(examples), 1)
        logp = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).logits.log_softmax(-1)
        scores.append(logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum(-1))
    predictions = torch.stack(scores, 1).argmax(1)
    return (predictions == torch.tensor([e.label for e in examples])).float().mean().item()


@pytest.mark.parametrize("name", ["toy_animal_yes", "toy_mood_on", "toy_time_true"])
def test_pretrained_it_follows_a_source_instruction(toy, name):
    """With its instruction as text the toy model solves a source task (chance is 0.5)."""
    assert _instructed_accuracy(*toy, name) >= 0.9


def test_the_script_builds_the_shipped_tokenizer(toy):
    spec = importlib.util.spec_from_file_location("pretrain_toy", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.build_tokenizer().get_vocab() == toy[1].get_vocab()
    shape = next(name for name, width in WIDTHS.items() if width == toy[0].config.d_model)
    built = script.toy_config(len(toy[1]), shape).to_dict()
    assert all(built[key] == getattr(toy[0].config, key) for key in ("d_model", "d_kv", "d_ff", "num_layers", "num_heads"))


def test_the_data_layer_knows_the_same_toy_models():
    from bmtpt_cli.data.vocabulary import TOY_MODEL_NAMES, TOY_TOKENIZER_DIR, TOY_TOKENIZER_DIRS

    assert set(TOY_MODEL_NAMES) == set(TOY_MODELS) == {*WIDTHS, "toy3"} and TOY_TOKENIZER_DIR == TOY_MODELS["toy"]
    for name, folder in TOY_TOKENIZER_DIRS.items():  # each reads the tokenizer it was pretrained with
        assert (folder / "tokenizer.json").read_bytes() == (TOY_MODELS[name] / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("name", list(WIDTHS))
def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, monkeypatch, name):
    monkeypatch.setitem(model_module.TOY_MODELS, name, tmp_path)
    with pytest.raises(BmtptError, match=f"the {name} model is missing from this install") as caught:
        load_frozen_t5(name)
    assert "\n" not in str(caught.value) and "scripts/pretrain_toy.py" in str(caught.value)
