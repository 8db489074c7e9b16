"""Evaluation in length-sorted chunks sized to a token budget: the same scores and predictions as one pass."""

import pytest
import torch

from bmtpt_cli.data.registry import get_task
from bmtpt_cli.scoring.score import predict, score_task

TASK = get_task("demo_nli")
EXAMPLES = TASK.examples("test")[:12]
PROMPT = torch.randn(4, 64, generator=torch.Generator().manual_seed(3))


def _lengths(runner):
    return [4 + len(runner.tokenizer(e.source).input_ids) for e in EXAMPLES]


@pytest.mark.parametrize("budget", [None, 60, 150, 400])
def test_chunks_are_length_sorted_within_budget_and_cover_every_example(runner, monkeypatch, budget):
    monkeypatch.setattr(runner, "eval_tokens", budget)
    chunks = runner.eval_chunks([e.source for e in EXAMPLES], 4, cap=5)
    lengths = _lengths(runner)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(EXAMPLES)))
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(flat)
    for chunk in chunks:
        assert len(chunk) <= 5
        if budget is not None and len(chunk) > 1:
            assert len(chunk) * max(lengths[i] for i in chunk) <= budget


@pytest.mark.parametrize("budget,cap", [(150, 3), (400, None)])
def test_chunked_scores_equal_one_pass(runner, monkeypatch, budget, cap):
    sources = [e.source for e in EXAMPLES]
    candidates = [tuple(TASK.label_words)] * len(EXAMPLES)
    whole = runner.candidate_log_likelihoods(PROMPT.expand(len(EXAMPLES), -1, -1), sources, candidates)
    monkeypatch.setattr(runner, "eval_tokens", budget)
    chunks = runner.eval_chunks(sources, 4, cap=cap)
    assert len(chunks) > 1
    got = [None] * len(EXAMPLES)
    for chunk in chunks:
        part = runner.candidate_log_likelihoods(PROMPT.expand(len(chunk), -1, -1), [sources[i] for i in chunk],
                                                [candidates[i] for i in chunk])
        for i, scores in zip(chunk, part):
            got[i] = scores
    torch.testing.assert_close(torch.stack(got), torch.stack(whole), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decode", ["rank", "generate"])
def test_chunked_predictions_equal_one_pass(runner, monkeypatch, decode):
    examples = EXAMPLES[:6]
    monkeypatch.setattr(runner, "eval_tokens", 10**6)
    whole = predict(runner, PROMPT, examples, candidates=TASK.label_words, decode=decode, batch_size=len(examples))
    monkeypatch.setattr(runner, "eval_tokens", 120)  # several passes of 1-2 examples
    assert len(runner.eval_chunks([e.source for e in examples], 4)) >= 3
    assert predict(runner, PROMPT, examples, candidates=TASK.label_words, decode=decode, batch_size=2) == whole


def test_chunked_rank_scoring_gives_the_same_metrics(runner, monkeypatch):
    monkeypatch.setattr(runner, "eval_tokens", 10**6)
    whole = score_task(runner, PROMPT, TASK, EXAMPLES, decode="rank")
    monkeypatch.setattr(runner, "eval_tokens", 120)
    score = score_task(runner, PROMPT, TASK, EXAMPLES, decode="rank")
    assert score.metrics == whole.metrics and score.invalid == whole.invalid == 0
