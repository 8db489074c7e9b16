"""The shipped `toy3` T5 of the third toy world: its hash, offline loading, its tokenizer (the script's), and the
world's property 1 (without a learned prompt every target is near chance) on a few seeds."""

import hashlib
import importlib.util
import statistics
from pathlib import Path

import pytest
import torch

from bmtpt_cli.data import toyworld3
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner import model as model_module
from bmtpt_cli.runner.model import TOY_MODELS, load_frozen_t5
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.scoring.score import score_task

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pretrain_toy3.py"


@pytest.fixture(scope="module")
def toy3():
    return load_frozen_t5("toy3")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("pretrain_toy3", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_hash_matches_the_record_and_the_checkpoint_is_small():
    folder = TOY_MODELS["toy3"]
    digest, name = (folder / "SHA256").read_text().split()
    assert name == "model.safetensors"
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == digest
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) <= 20 * 2**20


def test_loads_offline_frozen_with_the_scripts_tokenizer(toy3, script):
    model, tokenizer = toy3
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.config.d_model == 128 and len(tokenizer) == model.config.vocab_size
    assert script.build_tokenizer(toyworld3.vocabulary()).get_vocab() == tokenizer.get_vocab()
    assert set(toyworld3.vocabulary()) <= set(tokenizer.get_vocab())
    ids = tokenizer("story: we found a dog").input_ids
    assert ids[-1] == 1 and tokenizer.unk_token_id not in ids


def test_null_rows_answer_one_word_of_each_pair_and_each_word_for_half_the_fields(script):
    """What the model learned to say without a learned prompt carries no attribute and favours no word."""
    word_id = {w: i for i, w in enumerate(w for pair in toyworld3.LABEL_PAIRS.values() for w in pair)}
    by_verb, by_field = script.null_answer_tables(word_id)
    assert by_verb.shape == (8, 6) and by_field.shape == (6, 6)
    for table in (by_verb, by_field):
        for column, pair in zip(table.T.tolist(), toyworld3.LABEL_PAIRS.values()):
            assert sorted(column) == sorted([word_id[pair[0]], word_id[pair[1]]] * (len(column) // 2))
    again = script.null_answer_tables(word_id)
    assert torch.equal(again[0], by_verb) and torch.equal(again[1], by_field)  # part of the world, not of a run


def test_a_missing_checkpoint_names_its_script(tmp_path, monkeypatch):
    monkeypatch.setitem(model_module.TOY_MODELS, "toy3", tmp_path)
    with pytest.raises(BmtptError, match="the toy3 model is missing from this install") as caught:
        load_frozen_t5("toy3")
    assert "\n" not in str(caught.value) and "scripts/pretrain_toy3.py" in str(caught.value)


@torch.no_grad()
def test_without_a_learned_prompt_every_target_is_near_chance(toy3):
    """Property 1 on 5 random prompts and none (docs/toyworld.md measures 20: means 0.499-0.508, the highest 0.605;
    no prompt 0.500 on each, one word for every scene): each target's mean within 0.08 of chance and no prompt above
    0.70, where the issue's bounds for 20 seeds are 0.05 and 0.65."""
    model, tokenizer = toy3
    runner = FrozenT5Runner(model, tokenizer, max_source_length=64, max_target_length=4)
    candidates = runner.vocab_candidate_ids(5000)
    for name in toyworld3.TARGET_NAMES:
        task = toyworld3.TOY3_TASKS[name]
        examples = task.examples("test", taskless=True)[:200]
        scores = [score_task(runner, torch.zeros(0, runner.d_model), task, examples).value]
        for seed in range(5):
            prompt = sample_vocab_prompts(runner.vocab_embeddings.detach().cpu(), count=1, length=8,
                                          candidate_ids=candidates, generator=torch.Generator().manual_seed(seed))[0]
            scores.append(score_task(runner, prompt, task, examples).value)
        assert abs(statistics.fmean(scores) - 0.5) < 0.08 and max(scores) < 0.70, (name, scores)
