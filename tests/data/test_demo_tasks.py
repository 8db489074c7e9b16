"""The demo tasks: sizes, balance, determinism, formatting, split hygiene, learnable labels."""

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from bmtpt_cli.data import demo
from bmtpt_cli.data.demo import DEMO_TASKS
from bmtpt_cli.data.task import SPLITS, Task, TextExample
from bmtpt_cli.errors import BmtptError

NAMES = sorted(DEMO_TASKS)
SIZES = {"train": 320, "validation": 64, "test": 64}

DIGEST_SCRIPT = """
import hashlib, json
from bmtpt_cli.data.demo import DEMO_TASKS
records = {n: {s: t.load_records(s) for s in ("train", "validation", "test")} for n, t in sorted(DEMO_TASKS.items())}
print(hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest())
"""


def _digest() -> str:
    records = {n: {s: t.load_records(s) for s in SPLITS} for n, t in sorted(DEMO_TASKS.items())}
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def test_the_five_tasks_and_their_labels():
    assert {n: t.label_words for n, t in DEMO_TASKS.items()} == {
        "demo_sentiment": ("negative", "positive"),
        "demo_review": ("negative", "positive"),
        "demo_nli": ("entailment", "neutral", "contradiction"),
        "demo_rte": ("entailment", "not_entailment"),
        "demo_topic": ("sports", "food", "weather"),
    }
    for name, task in DEMO_TASKS.items():
        assert task.name == name and task.benchmark == "demo" and task.metric == "accuracy"


@pytest.mark.parametrize("name", NAMES)
def test_split_sizes_and_balance(name):
    task = DEMO_TASKS[name]
    for split, size in SIZES.items():
        records = task.load_records(split)
        assert len(records) == size
        counts = Counter(r["label"] for r in records)
        assert set(counts) == set(range(len(task.label_words)))
        assert max(counts.values()) - min(counts.values()) <= 1, (split, counts)
        assert all(set(r) == {*task.input_fields, "label"} for r in records)


@pytest.mark.parametrize("name", NAMES)
def test_no_input_shared_between_or_within_splits(name):
    sources = {s: [e.source for e in DEMO_TASKS[name].examples(s)] for s in SPLITS}
    for split in SPLITS:
        assert len(set(sources[split])) == len(sources[split]), f"duplicate input in {split}"
    train = set(sources["train"])
    assert not train & set(sources["test"])
    assert not train & set(sources["validation"])
    assert not set(sources["validation"]) & set(sources["test"])


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_short(name):
    task = DEMO_TASKS[name]
    for split in SPLITS:
        for record in task.load_records(split):
            for field in task.input_fields:
                assert 10 < len(record[field]) <= 120, record[field]


def test_same_records_on_every_call():
    first = {n: t.load_records("train") for n, t in DEMO_TASKS.items()}
    first["demo_nli"][0]["premise"] = "changed by the caller"  # must not leak into the cache
    second = {n: t.load_records("train") for n, t in DEMO_TASKS.items()}
    assert second["demo_nli"][0]["premise"] != "changed by the caller"
    assert _digest() == _digest()


def test_same_records_in_separate_processes():
    digests = set()
    for hash_seed in ("1", "2"):  # different str-hash randomisation must not matter
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert digests == {_digest()}


# The demo data itself, pinned: a change here changes every demo result, so update it on purpose
# (after changing the templates or word lists), never to silence a failure on another machine.
DEMO_DIGEST = "cd9bef8f53cacc1f78ea20ebea620bc04928e7cc679873abd5169d7e5cfa256b"


def test_demo_data_is_pinned():
    assert _digest() == DEMO_DIGEST


def test_seed_comes_from_the_name_not_hash():
    assert demo._seed("demo_nli") == 1795484411  # zlib.crc32(b"demo_nli"), fixed forever


@pytest.mark.parametrize(
    "name, record, source, target",
    [
        ("demo_sentiment", {"sentence": "A", "label": 1}, "demo_sentiment sentence: A", "positive"),
        ("demo_review", {"review": "A. B.", "label": 0}, "demo_review review: A. B.", "negative"),
        (
            "demo_nli",
            {"premise": "A", "hypothesis": "B", "label": 0},
            "demo_nli premise: A hypothesis: B",
            "entailment",
        ),
        (
            "demo_rte",
            {"sentence1": "A", "sentence2": "B", "label": 1},
            "demo_rte sentence1: A sentence2: B",
            "not_entailment",
        ),
        ("demo_topic", {"sentence": "A", "label": 2}, "demo_topic sentence: A", "weather"),
    ],
)
def test_format_follows_the_attempt_convention(name, record, source, target):
    task = DEMO_TASKS[name]
    label = record["label"]
    assert task.format(record) == TextExample(source=source, target=target, label=label)
    taskless = source.removeprefix(f"{name} ")
    assert task.format(record, taskless=True) == TextExample(taskless, target, label)


def test_examples_match_their_records():
    task = DEMO_TASKS["demo_nli"]
    record = task.load_records("test")[0]
    example = task.examples("test")[0]
    assert example.source == f"demo_nli premise: {record['premise']} hypothesis: {record['hypothesis']}"
    assert example.target == task.label_words[record["label"]]
    assert task.examples("test", taskless=True)[0].source.startswith("premise: ")


def test_unknown_or_empty_split_and_bad_records_are_user_errors():
    task = DEMO_TASKS["demo_rte"]
    with pytest.raises(BmtptError, match=r"demo_rte.*'dev'.*train, validation, test"):
        task.examples("dev")
    empty = Task("empty_task", "demo", ("sentence",), ("no", "yes"), ("accuracy",), lambda split, data_dir: [])
    with pytest.raises(BmtptError, match=r"empty_task.*split train is empty"):
        empty.examples("train")
    with pytest.raises(BmtptError, match="sentence2"):
        task.format({"sentence1": "A", "label": 0})
    with pytest.raises(BmtptError, match="label 2"):
        task.format({"sentence1": "A", "sentence2": "B", "label": 2})


def test_generation_task_keeps_free_text_target():
    task = Task("gen", "demo", ("question",), None, ("accuracy",), lambda split, data_dir: [])
    assert task.format({"question": "Q", "label": "an answer"}) == TextExample(
        "gen question: Q", "an answer", None
    )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize(
    "name, positive, negative",
    [
        ("demo_sentiment", demo.SENTIMENT_POSITIVE, demo.SENTIMENT_NEGATIVE),
        ("demo_review", demo.REVIEW_ALL_POSITIVE, demo.REVIEW_ALL_NEGATIVE),
    ],
)
def test_polarity_is_decided_by_words_in_the_input(name, positive, negative):
    for record in DEMO_TASKS[name].load_records("train"):
        text = record[DEMO_TASKS[name].input_fields[0]].lower()
        has_pos = any(re.search(rf"\b{w}\b", text) for w in positive)
        has_neg = any(re.search(rf"\b{w}\b", text) for w in negative)
        assert (has_pos, has_neg) == (record["label"] == 1, record["label"] == 0), text


def test_sentiment_and_review_share_some_adjectives_but_not_all():
    shared = set(demo.SENTIMENT_POSITIVE) & set(demo.REVIEW_ALL_POSITIVE)
    assert shared and shared != set(demo.REVIEW_ALL_POSITIVE)
    used = {
        n: {w for r in DEMO_TASKS[n].load_records("train") for w in _words(r[DEMO_TASKS[n].input_fields[0]])}
        for n in ("demo_sentiment", "demo_review")
    }
    assert used["demo_sentiment"] & used["demo_review"] & shared


def test_topic_is_decided_by_topic_words():
    vocab = {0: demo.SPORTS, 1: demo.FOODS + demo.INGREDIENTS, 2: demo.PRECIPITATION + ("degrees",)}
    for record in DEMO_TASKS["demo_topic"].load_records("train"):
        hits = {k for k, words in vocab.items() if any(re.search(rf"\b{w}\b", record["sentence"]) for w in words)}
        assert hits == {record["label"]}, record


def test_nli_hypothesis_is_about_the_premise_person_or_thing():
    def mentioned(vocab, text):
        return {w for w in vocab if re.search(rf"\b{w}\b", text)}

    for record in DEMO_TASKS["demo_nli"].load_records("validation"):
        (person,) = mentioned(demo.NAMES, record["premise"])
        (thing,) = mentioned(demo.OBJECTS, record["premise"])
        in_hypothesis = mentioned(demo.NAMES + demo.OBJECTS, record["hypothesis"])
        assert in_hypothesis and in_hypothesis <= {person, thing}, record
