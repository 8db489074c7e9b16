"""The toy world: 16 generated yes/no-style tasks over one kind of scene sentence (docs/toyworld.md).

Every record is one scene, e.g. "we found a cheerful dog , a box and a saw in the attic at night .",
drawn from closed word lists written for this project. A scene carries six binary attributes,
drawn independently (so knowing one says nothing about another):

- animal / food / tool: one of its three nouns is an animal / a food / a tool;
- mood: its one opinion word is positive;
- place: it happens outdoors (its place word is an outdoor one);
- time: it happens in daylight (its time phrase is a day one).

A task is one *operation* (the attribute it asks about) with one *label pair* (yes/no, true/false,
right/wrong, on/off): its label is the attribute, written with the pair's words. The 12 source
tasks cover each operation with two label pairs and each pair with three operations; the 4 target
tasks are the combinations left out, so each recombines an operation and a label pair the
pretrained `toy` model has seen only apart. Each task also has an `instruction` (written as text,
e.g. "does the text mention an animal ? answer yes or no ."): the toy model was pretrained on the
source tasks with their instructions (scripts/pretrain_toy.py); the targets' are never shown to it.

Splits are the task's own (4000/200/400), labels balanced in each, generated with a
`random.Random` seeded by `zlib.crc32(task name)`; no scene appears twice within a task.
"""

from __future__ import annotations

import functools
import random
import zlib
from dataclasses import dataclass

from bmtpt_cli.data.task import SPLITS, Task
from bmtpt_cli.errors import BmtptError

BENCHMARK = "toyworld"
SPLIT_SIZES = {"train": 4000, "validation": 200, "test": 400}
FIELD = "text"
_MAX_TRIES = 1000  # redraws allowed to find a scene not generated before

# ---------------------------------------------------------------- the closed word lists

ANIMALS = ("dog", "cat", "horse", "goat", "rabbit", "fox", "owl", "duck", "mouse", "sheep", "tiger", "bear")
FOODS = ("apple", "bread", "cheese", "cake", "soup", "melon", "rice", "pear", "honey", "egg", "plum", "pie")
TOOLS = ("hammer", "sickle", "drill", "wrench", "shovel", "rake", "axe", "chisel", "pliers", "trowel", "spade", "crowbar")
NEUTRAL = ("box", "chair", "lamp", "book", "coin", "rug", "cup", "clock", "vase", "bell", "kite", "shoe",
           "hat", "bag", "ring", "map")
POSITIVE = ("lovely", "wonderful", "pleasant", "cheerful", "delightful", "splendid", "charming", "gorgeous")
NEGATIVE = ("awful", "dreadful", "gloomy", "nasty", "horrid", "ugly", "miserable", "dismal")
OUTDOOR = ("garden", "forest", "beach", "field", "park", "meadow", "river", "hillside")
INDOOR = ("kitchen", "hall", "attic", "cellar", "office", "library", "bedroom", "basement")
DAY = ("in the morning", "at noon", "in the afternoon", "at sunrise", "at midday")
NIGHT = ("at night", "at midnight", "after dark", "before dawn", "at nightfall")
SUBJECTS = ("i", "we", "my aunt", "the boy", "a girl", "the farmer", "our neighbour", "my brother", "the teacher")
VERBS = ("saw", "found", "kept", "painted", "counted", "left", "noticed", "hid")

CATEGORIES = {"animal": ANIMALS, "food": FOODS, "tool": TOOLS}
ATTRIBUTES = ("animal", "food", "tool", "mood", "place", "time")
"""The operations: the attribute of a scene a task asks about."""

OPERATION_PHRASES = {
    "animal": "does the text mention an animal ?",
    "food": "does the text mention something to eat ?",
    "tool": "does the text mention a tool ?",
    "mood": "is the mood of the text happy ?",
    "place": "does it happen outdoors ?",
    "time": "does it happen in daylight ?",
}
LABEL_PAIRS = {"yes": ("no", "yes"), "true": ("false", "true"), "right": ("wrong", "right"), "on": ("off", "on")}
"""Label pairs by name: (word for an absent attribute, word for a present one) = label ids 0, 1."""

SOURCE_COMBINATIONS = (
    ("animal", "yes"), ("animal", "true"),
    ("food", "true"), ("food", "right"),
    ("tool", "right"), ("tool", "on"),
    ("mood", "on"), ("mood", "yes"),
    ("place", "yes"), ("place", "right"),
    ("time", "true"), ("time", "on"),
)
TARGET_COMBINATIONS = (("animal", "right"), ("mood", "true"), ("tool", "yes"), ("time", "right"))


@dataclass(frozen=True)
class ToyTask:
    """One toy task's design: its operation, label pair, role and instruction text."""

    name: str
    operation: str  # one of ATTRIBUTES
    labels: str  # a key of LABEL_PAIRS
    role: str  # "source" (seen in pretraining) or "target" (never seen)

    @property
    def label_words(self) -> tuple[str, str]:
        return LABEL_PAIRS[self.labels]

    @property
    def instruction(self) -> str:
        """The instruction written as text, e.g. 'does the text mention a tool ? answer yes or no .'."""
        negative, positive = self.label_words
        return f"{OPERATION_PHRASES[self.operation]} answer {positive} or {negative} ."


def _name(operation: str, labels: str) -> str:
    return f"toy_{operation}_{labels}"


DESIGN: dict[str, ToyTask] = {
    _name(op, labels): ToyTask(_name(op, labels), op, labels, role)
    for role, combinations in (("source", SOURCE_COMBINATIONS), ("target", TARGET_COMBINATIONS))
    for op, labels in combinations
}
"""Every toy task's design by name, sources first."""
SOURCE_NAMES = tuple(name for name, t in DESIGN.items() if t.role == "source")
TARGET_NAMES = tuple(name for name, t in DESIGN.items() if t.role == "target")


def related_sources(target: str) -> tuple[str, ...]:
    """Sources with the target's operation (and other label words): where transfer is expected."""
    op = DESIGN[target].operation
    return tuple(n for n in SOURCE_NAMES if DESIGN[n].operation == op)


def unrelated_sources(target: str) -> tuple[str, ...]:
    """Controls: sources with the target's label words but another operation."""
    t = DESIGN[target]
    return tuple(n for n in SOURCE_NAMES if DESIGN[n].labels == t.labels and DESIGN[n].operation != t.operation)


# ---------------------------------------------------------------- scenes


def scene_words(rng: random.Random, attributes: dict[str, bool]) -> tuple[list[str], str, str, str, str, str]:
    """A scene's words for the given six attributes: (three nouns, opinion, place, time, subject, verb)."""
    pick = rng.choice
    nouns = [pick(words) for category, words in CATEGORIES.items() if attributes[category]]
    nouns += rng.sample(NEUTRAL, 3 - len(nouns))
    rng.shuffle(nouns)
    opinion = pick(POSITIVE if attributes["mood"] else NEGATIVE)
    place = pick(OUTDOOR if attributes["place"] else INDOOR)
    time = pick(DAY if attributes["time"] else NIGHT)
    return nouns, opinion, place, time, pick(SUBJECTS), pick(VERBS)


def scene(rng: random.Random, attributes: dict[str, bool]) -> str:
    """One scene sentence with the given six attributes (see the module docstring)."""
    nouns, opinion, place, time, subject, verb = scene_words(rng, attributes)
    shape = rng.randrange(4)
    if shape in (1, 2):  # the opinion word sits on one of the nouns
        i = rng.randrange(3)
        nouns[i] = f"{opinion} {nouns[i]}"
    listed = f"a {nouns[0]} , a {nouns[1]} and a {nouns[2]}"
    if shape == 0:
        return f"{subject} {verb} {listed} in the {place} {time} . it was {opinion} ."
    if shape == 1:
        return f"{time} , {subject} {verb} {listed} in the {place} ."
    if shape == 2:
        return f"in the {place} {time} {subject} {verb} {listed} ."
    return f"it felt {opinion} {time} in the {place} when {subject} {verb} {listed} ."


def scene_attributes(text: str) -> dict[str, bool]:
    """The six attributes read back from a scene's words (the rules, independent of the generator)."""
    words = set(text.split())
    phrase = next(p for p in DAY + NIGHT if p in text)
    return {
        "animal": bool(words & set(ANIMALS)),
        "food": bool(words & set(FOODS)),
        "tool": bool(words & set(TOOLS)),
        "mood": bool(words & set(POSITIVE)),
        "place": bool(words & set(OUTDOOR)),
        "time": phrase in DAY,
    }


def vocabulary() -> list[str]:
    """Every word a toy task's text can hold: scenes, field name, task names, instructions, labels."""
    words: set[str] = set()
    phrases = [*ANIMALS, *FOODS, *TOOLS, *NEUTRAL, *POSITIVE, *NEGATIVE, *OUTDOOR, *INDOOR, *DAY, *NIGHT,
               *SUBJECTS, *VERBS, *OPERATION_PHRASES.values(), "answer or", "a , and in the . it was when felt",
               f"{FIELD} :", *DESIGN]
    phrases += [w for pair in LABEL_PAIRS.values() for w in pair]
    for phrase in phrases:
        words.update(phrase.split())
    return sorted(words - {":"}) + [":"]


# ---------------------------------------------------------------- splits and the registry


def balanced_splits(name: str, operation: str, field: str, make_scene=None) -> dict[str, tuple[dict, ...]]:
    """All splits of one generated task whose label is `operation`'s attribute: labels balanced per split, no
    scene used twice, records `{field: scene, "label": 0/1}`, drawn by `make_scene(rng, attributes)` (default
    `scene`) from a `random.Random` seeded with the CRC-32 of `name`."""
    make_scene = make_scene or scene
    rng = random.Random(zlib.crc32(name.encode("utf-8")))
    seen: set[str] = set()
    splits: dict[str, tuple[dict, ...]] = {}
    for split in SPLITS:
        labels = [i % 2 for i in range(SPLIT_SIZES[split])]
        rng.shuffle(labels)
        records = []
        for label in labels:
            for _ in range(_MAX_TRIES):
                attributes = {a: rng.random() < 0.5 for a in ATTRIBUTES}
                attributes[operation] = bool(label)
                text = make_scene(rng, attributes)
                if text not in seen:
                    break
            else:  # pragma: no cover - the word lists give millions of scenes
                raise RuntimeError(f"{name}: the word lists cannot give enough distinct scenes")
            seen.add(text)
            records.append({field: text, "label": label})
        splits[split] = tuple(records)
    return splits


@functools.lru_cache(maxsize=None)
def _generate(name: str) -> dict[str, tuple[dict, ...]]:
    """All splits of one toy task: labels balanced per split, no scene used twice."""
    return balanced_splits(name, DESIGN[name].operation, FIELD)


def _load(name: str, split: str, data_dir=None) -> list[dict]:  # noqa: ARG001 - generated, not read
    """Records of one split of a toy task, as fresh dicts the caller may change."""
    if split not in SPLIT_SIZES:
        raise BmtptError(f"task {name} has no split {split!r}; use one of {', '.join(SPLITS)}")
    return [dict(record) for record in _generate(name)[split]]


def _description(t: ToyTask) -> str:
    role = "source, seen in the toy model's pretraining" if t.role == "source" else "target, never seen in pretraining"
    return f"scenes: {t.operation} operation, {'/'.join(reversed(t.label_words))} labels ({role})"


TOY_TASKS: dict[str, Task] = {
    name: Task(
        name=name,
        benchmark=BENCHMARK,
        input_fields=(FIELD,),
        label_words=t.label_words,
        metrics=("accuracy",),
        load_records=functools.partial(_load, name),
        description=_description(t),
        source="generated by bmtpt",
        split_rule="own ({train}/{validation}/{test})".format(**SPLIT_SIZES),
    )
    for name, t in DESIGN.items()
}
"""The toy world's tasks by name; records are generated on first use and cached."""
