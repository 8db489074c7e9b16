"""The toy world's tasks: design, determinism, balance, split hygiene, labels readable from the words."""

import hashlib
import json
import subprocess
import sys
from collections import Counter

import pytest

from bmtpt_cli.data import toyworld
from bmtpt_cli.data.registry import TASKS
from bmtpt_cli.data.task import SPLITS
from bmtpt_cli.data.toyworld import DESIGN, SOURCE_NAMES, TARGET_NAMES, TOY_TASKS
from bmtpt_cli.errors import BmtptError

SIZES = {"train": 4000, "validation": 200, "test": 400}

DIGEST_SCRIPT = """
import hashlib, json
from bmtpt_cli.data.toyworld import TOY_TASKS
records = {n: {s: t.load_records(s) for s in ("train", "validation", "test")} for n, t in sorted(TOY_TASKS.items())}
print(hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest())
"""


def test_registered_with_their_family_and_label_words():
    assert len(SOURCE_NAMES) == 12 and len(TARGET_NAMES) == 4
    for name, task in TOY_TASKS.items():
        assert TASKS[name] is task and task.benchmark == "toyworld" and task.metric == "accuracy"
        assert task.input_fields == ("text",)
        assert task.label_words == toyworld.LABEL_PAIRS[DESIGN[name].labels]
    assert TOY_TASKS["toy_tool_yes"].label_words == ("no", "yes")
    assert DESIGN["toy_tool_yes"].instruction == "does the text mention a tool ? answer yes or no ."


def test_targets_recombine_what_the_sources_hold_and_never_repeat_a_source():
    sources = {(DESIGN[n].operation, DESIGN[n].labels) for n in SOURCE_NAMES}
    for name in TARGET_NAMES:
        target = DESIGN[name]
        assert (target.operation, target.labels) not in sources
        related, unrelated = toyworld.related_sources(name), toyworld.unrelated_sources(name)
        assert len(related) == 2 and len(unrelated) == 3
        assert all(DESIGN[n].operation == target.operation and DESIGN[n].labels != target.labels for n in related)
        assert all(DESIGN[n].labels == target.labels and DESIGN[n].operation != target.operation for n in unrelated)
    assert toyworld.related_sources("toy_tool_yes") == ("toy_tool_right", "toy_tool_on")


@pytest.mark.parametrize("name", ["toy_animal_yes", "toy_mood_true"])
def test_split_sizes_balance_and_no_scene_twice(name):
    seen = set()
    for split, size in SIZES.items():
        records = TOY_TASKS[name].load_records(split)
        assert len(records) == size
        assert Counter(r["label"] for r in records) == {0: size // 2, 1: size // 2}
        texts = {r["text"] for r in records}
        assert len(texts) == size and not texts & seen
        seen |= texts


def test_every_label_is_the_attribute_read_back_from_the_words():
    for name in (*SOURCE_NAMES[::3], *TARGET_NAMES):
        op = DESIGN[name].operation
        for split in SPLITS:
            for record in TOY_TASKS[name].load_records(split):
                assert toyworld.scene_attributes(record["text"])[op] == bool(record["label"]), record


def test_other_attributes_are_no_shortcut_to_a_target():
    """Each other operation's answer agrees with a target's label about half the time."""
    for name in TARGET_NAMES:
        records = TOY_TASKS[name].load_records("test")
        for other in toyworld.ATTRIBUTES:
            if other == DESIGN[name].operation:
                continue
            agree = sum(toyworld.scene_attributes(r["text"])[other] == bool(r["label"]) for r in records)
            assert 0.42 < agree / len(records) < 0.58, (name, other, agree)


def test_generation_is_deterministic_across_processes():
    records = {n: {s: t.load_records(s) for s in SPLITS} for n, t in sorted(TOY_TASKS.items())}
    here = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    other = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == here


def test_records_are_fresh_copies_and_unknown_splits_are_one_line_errors():
    task = TOY_TASKS["toy_food_true"]
    task.load_records("test")[0]["text"] = "changed"
    assert task.load_records("test")[0]["text"] != "changed"
    with pytest.raises(BmtptError, match="no split 'dev'; use one of train, validation, test"):
        task.load_records("dev")


def test_taskless_format_is_the_field_only():
    example = TOY_TASKS["toy_time_right"].examples("test", taskless=True)[0]
    assert example.source.startswith("text: ") and example.target in ("wrong", "right")
    assert TOY_TASKS["toy_time_right"].examples("test")[0].source.startswith("toy_time_right text: ")


def test_vocabulary_holds_every_word_the_formatter_emits():
    vocab = set(toyworld.vocabulary())
    for name, task in TOY_TASKS.items():
        words = set(DESIGN[name].instruction.split()) | set(task.label_words)
        for example in task.examples("validation"):
            words |= set(example.source.replace(":", " : ").split())
        assert words <= vocab, words - vocab
