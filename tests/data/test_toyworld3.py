"""The third toy world's tasks: fields per family, label words without a polarity, targets on scenes of shapes no
source uses, splits, labels from the words."""

import re
from collections import Counter

import pytest

from bmtpt_cli.data import toyworld, toyworld3
from bmtpt_cli.data.registry import TASKS
from bmtpt_cli.data.task import SPLITS
from bmtpt_cli.data.toyworld3 import DESIGN, SOURCE_NAMES, TARGET_NAMES, TOY3_TASKS
from bmtpt_cli.errors import BmtptError


def test_registered_with_their_field_and_label_words():
    assert len(SOURCE_NAMES) == 12 and len(TARGET_NAMES) == 4
    for name, task in TOY3_TASKS.items():
        assert TASKS[name] is task and task.benchmark == "toyworld3" and task.metric == "accuracy"
        assert task.input_fields == (toyworld3.FIELDS[DESIGN[name].operation],)
        assert task.label_words[1] == DESIGN[name].holds and set(task.label_words) in map(set, toyworld3.LABEL_PAIRS.values())
    assert TOY3_TASKS["toy3_animal_yes"].label_words == ("no", "yes") and TOY3_TASKS["toy3_time_no"].label_words == ("yes", "no")
    assert TOY3_TASKS["toy3_tool_right_shifted"].label_words == ("wrong", "right")
    assert len(set(toyworld3.FIELDS.values())) == 6


def test_every_word_means_holds_exactly_once_among_the_sources():
    """No label word leans either way: each pair is used by two sources, once each way round."""
    holds = Counter(DESIGN[n].holds for n in SOURCE_NAMES)
    absent = Counter(DESIGN[n].label_words[0] for n in SOURCE_NAMES)
    words = {w for pair in toyworld3.LABEL_PAIRS.values() for w in pair}
    assert holds == absent == Counter({w: 1 for w in words})


def _shifted(text: str) -> bool:
    """Whether a scene has one of the targets' two shapes, read from its words (not from the generator)."""
    return " . it felt " in text or re.match(r"in the \w+ it was ", text) is not None


def test_targets_are_a_related_sources_task_on_scenes_of_new_shapes():
    """A target asks what one source asks, in its words and field; only its scenes' sentence shapes are new."""
    sources = {(DESIGN[n].operation, DESIGN[n].label_words): n for n in SOURCE_NAMES}
    for name in TARGET_NAMES:
        target = DESIGN[name]
        assert name == sources[target.operation, target.label_words] + "_shifted"
        related, unrelated = toyworld3.related_sources(name), toyworld3.unrelated_sources(name)
        assert len(related) == 2 and len(unrelated) == 1
        assert all(DESIGN[n].operation == target.operation and DESIGN[n].field == target.field for n in related)
        control = DESIGN[unrelated[0]]
        assert control.pair == target.pair and control.label_words != target.label_words and control.field != target.field
        field = target.field
        assert all(_shifted(r[field]) for split in SPLITS for r in TOY3_TASKS[name].load_records(split))
    assert toyworld3.related_sources("toy3_tool_right_shifted") == ("toy3_tool_right", "toy3_tool_off")
    assert toyworld3.unrelated_sources("toy3_animal_yes_shifted") == ("toy3_time_no",)
    for name in SOURCE_NAMES:
        field = DESIGN[name].field
        assert not any(_shifted(r[field]) for split in SPLITS for r in TOY3_TASKS[name].load_records(split))


@pytest.mark.parametrize("name", ["toy3_animal_yes", "toy3_mood_down_shifted"])
def test_split_sizes_balance_and_no_scene_twice(name):
    seen, field = set(), DESIGN[name].field
    for split, size in toyworld3.SPLIT_SIZES.items():
        records = TOY3_TASKS[name].load_records(split)
        assert len(records) == size and Counter(r["label"] for r in records) == {0: size // 2, 1: size // 2}
        texts = {r[field] for r in records}
        assert len(texts) == size and not texts & seen
        seen |= texts


def test_every_label_is_the_attribute_read_back_from_the_words():
    for name in (*SOURCE_NAMES[::3], *TARGET_NAMES):
        design = DESIGN[name]
        for split in SPLITS:
            for record in TOY3_TASKS[name].load_records(split):
                assert toyworld.scene_attributes(record[design.field])[design.operation] == bool(record["label"]), record


def test_taskless_inputs_carry_the_family_field_and_every_word_is_in_the_vocabulary():
    example = TOY3_TASKS["toy3_animal_yes_shifted"].examples("test", taskless=True)[0]
    assert example.source.startswith("story: ") and example.target in ("no", "yes")
    vocab = set(toyworld3.vocabulary())
    for task in TOY3_TASKS.values():
        words = set(task.label_words)
        for example in task.examples("validation"):
            words |= set(example.source.replace(":", " : ").split())
        assert words <= vocab, words - vocab


def test_unknown_splits_are_one_line_errors():
    with pytest.raises(BmtptError, match="no split 'dev'; use one of train, validation, test"):
        TOY3_TASKS["toy3_food_true"].load_records("dev")
