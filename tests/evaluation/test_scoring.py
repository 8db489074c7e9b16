"""Rank scoring and generation of a prompt on a task, against the runner's likelihoods computed one by one."""

import torch

from bmtpt_cli.data.registry import get_task
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.scoring.score import decode_mode, predict, score_task
from reference import score_candidates, sequence_log_likelihoods


def _loglik(runner, prompt, source, target):
    return sequence_log_likelihoods(runner, prompt.unsqueeze(0), [source], [target]).item()


def test_rank_picks_each_examples_most_likely_own_candidate(runner, monkeypatch):
    monkeypatch.setattr(runner, "eval_tokens", 80)  # passes of at most 80 padded positions: 2 + 1 examples
    prompt = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(0))
    examples = [
        TextExample("q: who won? passage: Ann beat Bo.", "Ann", None, candidates=("Ann", "Bo")),
        TextExample("q: colour? passage: red, blue, green", "red", None, candidates=("red", "blue", "green")),
        TextExample("q: day? passage: monday", "monday", None, candidates=("monday", "friday")),
    ]
    predicted = predict(runner, prompt, examples, candidates=None, decode="rank")
    for example, prediction in zip(examples, predicted):
        brute = max(example.candidates, key=lambda c: _loglik(runner, prompt, example.source, c))
        assert prediction == brute


def test_rank_with_label_words_equals_score_candidates(runner):
    task = get_task("demo_nli")
    examples = task.examples("test")[:5]
    prompt = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(1))
    predicted = predict(runner, prompt, examples, candidates=task.label_words, decode="rank")
    scores = score_candidates(runner, prompt.expand(5, -1, -1), [e.source for e in examples], list(task.label_words))
    assert predicted == [task.label_words[i] for i in scores.argmax(dim=1).tolist()]


def test_free_text_tasks_fall_back_to_generation():
    free = Task("qa", "x", ("question",), None, ("squad_f1", "squad_em"), lambda split, data_dir: [])
    with_candidates = [TextExample("a", "b", None, candidates=("b", "c"))]
    without = [TextExample("a", "b", None, answers=("b",))]
    assert decode_mode(free, with_candidates, "rank") == "rank"
    assert decode_mode(free, without, "rank") == "generate"
    assert decode_mode(get_task("demo_rte"), without, "generate") == "generate"


def test_score_task_reports_every_metric_of_the_task(runner):
    task = get_task("demo_review")
    examples = task.examples("test")[:6]
    prompt = torch.zeros(3, runner.d_model)
    score = score_task(runner, prompt, task, examples)
    predicted = predict(runner, prompt, examples, candidates=task.label_words)
    expected = sum(p == e.target for p, e in zip(predicted, examples)) / 6
    assert score.metric == "accuracy" and score.value == expected and score.metrics == {"accuracy": expected}
    assert score.decode == "rank" and score.examples == 6
