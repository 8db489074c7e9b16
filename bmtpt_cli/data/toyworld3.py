"""The third toy world: the toy world's scenes, with families whose inputs tell them apart (docs/toyworld.md).

The scenes, attributes and operations are the toy world's (`toyworld`). What changes:

- **Fields.** Each operation family's scenes come under their own field (`story: ...` for animal,
  `note:` food, `entry:` tool, `memo:` mood, `letter:` place, `card:` time), as GLUE's tasks differ in
  their inputs. The field never names the operation; a target has its related sources' field. One
  prompt can therefore solve every source at once (the field says which operation), so a
  multi-task source posterior has something to hold.
- **Label words without a polarity.** Six label pairs; each is used by two sources, once with its first
  word meaning "the attribute holds" and once with its second. Nothing in pretraining ties a word to
  "holds".
- **Targets are a new input distribution.** Each of the 4 targets asks what one source asks (its operation,
  words and field) of scenes in two sentence shapes no source uses (`shifted_scene`), as SciTail asks MNLI's
  question of other text. Targets that wrote an operation in another family's words were tried in 39
  pretraining runs: the 1.9M-parameter model did not recombine them cheaply (docs/toyworld.md).

A source is named `toy3_<operation>_<the word for "holds">`, a target the same with `_shifted`. The 12
sources: each operation with two label pairs, each label pair with two operations in opposite polarities.
Related sources share the target's operation (and field); the unrelated control uses the target's words the
other way round, for another operation. Splits and seeding follow `toyworld`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from bmtpt_cli.data import toyworld
from bmtpt_cli.data.task import SPLITS, Task
from bmtpt_cli.errors import BmtptError

BENCHMARK = "toyworld3"
SPLIT_SIZES = toyworld.SPLIT_SIZES
ATTRIBUTES = toyworld.ATTRIBUTES

FIELDS = {"animal": "story", "food": "note", "tool": "entry", "mood": "memo", "place": "letter", "time": "card"}
"""Each operation family's input field: its scenes come as `<field>: <scene>`."""

LABEL_PAIRS = {"yes": ("yes", "no"), "true": ("true", "false"), "right": ("right", "wrong"), "on": ("on", "off"),
               "up": ("up", "down"), "high": ("high", "low")}
"""The six label pairs by name: their two words (neither is "the positive one")."""

SOURCE_COMBINATIONS = (
    ("animal", "yes"), ("animal", "false"),
    ("food", "true"), ("food", "wrong"),
    ("tool", "right"), ("tool", "off"),
    ("mood", "on"), ("mood", "down"),
    ("place", "up"), ("place", "low"),
    ("time", "high"), ("time", "no"),
)
"""(operation, the word that means the attribute holds): every pair twice, once each way round."""
TARGET_COMBINATIONS = (("animal", "yes"), ("mood", "down"), ("tool", "right"), ("time", "high"))
"""(operation, word for "holds") of the 4 targets: one source's of each of four families, on scenes of shapes
the sources never use (`shifted_scene`), so a target is a new input distribution for an operation and words
the sources hold, as SciTail is for MNLI."""
TARGET_SUFFIX = "_shifted"


def shifted_scene(rng: random.Random, attributes: dict[str, bool]) -> str:
    """One scene in a sentence shape no source uses: the toy world's phrases in another order."""
    nouns, opinion, place, time, subject, verb = toyworld.scene_words(rng, attributes)
    listed = f"a {nouns[0]} , a {nouns[1]} and a {nouns[2]}"
    if rng.randrange(2) == 0:
        return f"{subject} {verb} {listed} {time} . it felt {opinion} in the {place} ."
    return f"in the {place} it was {opinion} {time} and {subject} {verb} {listed} ."


def _pair_of(word: str) -> str:
    return next(name for name, words in LABEL_PAIRS.items() if word in words)


@dataclass(frozen=True)
class ToyTask3:
    """One task's design: its operation, the word for "holds", role and field."""

    name: str
    operation: str  # one of ATTRIBUTES
    holds: str  # the label word written when the attribute holds
    role: str  # "source" (seen in pretraining) or "target" (never seen)

    @property
    def pair(self) -> str:
        """The name of the task's label pair (a key of LABEL_PAIRS)."""
        return _pair_of(self.holds)

    @property
    def label_words(self) -> tuple[str, str]:
        """(word for label 0, the attribute absent; word for label 1, present)."""
        other = next(w for w in LABEL_PAIRS[self.pair] if w != self.holds)
        return other, self.holds

    @property
    def field(self) -> str:
        return FIELDS[self.operation]


def _name(operation: str, holds: str, role: str = "source") -> str:
    return f"toy3_{operation}_{holds}" + (TARGET_SUFFIX if role == "target" else "")


DESIGN: dict[str, ToyTask3] = {
    _name(op, holds, role): ToyTask3(_name(op, holds, role), op, holds, role)
    for role, combinations in (("source", SOURCE_COMBINATIONS), ("target", TARGET_COMBINATIONS))
    for op, holds in combinations
}
"""Every task's design by name, sources first."""
SOURCE_NAMES = tuple(name for name, t in DESIGN.items() if t.role == "source")
TARGET_NAMES = tuple(name for name, t in DESIGN.items() if t.role == "target")


def related_sources(target: str) -> tuple[str, ...]:
    """Sources with the target's operation (its field, other words): where transfer is expected."""
    op = DESIGN[target].operation
    return tuple(n for n in SOURCE_NAMES if DESIGN[n].operation == op)


def unrelated_sources(target: str) -> tuple[str, ...]:
    """Controls: the source with the target's label words (the other way round), another operation."""
    t = DESIGN[target]
    return tuple(n for n in SOURCE_NAMES if DESIGN[n].pair == t.pair and DESIGN[n].operation != t.operation)


def vocabulary() -> list[str]:
    """Every word a task's text can hold: the toy world's, the fields, the new label words and task names."""
    words = set(toyworld.vocabulary()) - {":"}
    words.update(FIELDS.values())
    words.update(w for pair in LABEL_PAIRS.values() for w in pair)
    words.update(DESIGN)
    return sorted(words) + [":"]


@functools.lru_cache(maxsize=None)
def _generate(name: str) -> dict[str, tuple[dict, ...]]:
    """All splits of one task (`toyworld.balanced_splits`): a target's scenes in the shapes no source uses."""
    design = DESIGN[name]
    make_scene = shifted_scene if design.role == "target" else toyworld.scene
    return toyworld.balanced_splits(name, design.operation, design.field, make_scene)


def _load(name: str, split: str, data_dir=None) -> list[dict]:  # noqa: ARG001 - generated, not read
    """Records of one split, as fresh dicts the caller may change."""
    if split not in SPLIT_SIZES:
        raise BmtptError(f"task {name} has no split {split!r}; use one of {', '.join(SPLITS)}")
    return [dict(record) for record in _generate(name)[split]]


def _description(t: ToyTask3) -> str:
    role = "source, seen in the toy3 model's pretraining" if t.role == "source" else "target, never seen in pretraining"
    return f"'{t.field}' scenes: {t.operation} operation, '{t.holds}' when it holds, else '{t.label_words[0]}' ({role})"


TOY3_TASKS: dict[str, Task] = {
    name: Task(
        name=name,
        benchmark=BENCHMARK,
        input_fields=(t.field,),
        label_words=t.label_words,
        metrics=("accuracy",),
        load_records=functools.partial(_load, name),
        description=_description(t),
        source="generated by bmtpt",
        split_rule="own ({train}/{validation}/{test})".format(**SPLIT_SIZES),
    )
    for name, t in DESIGN.items()
}
"""The third toy world's tasks by name; records are generated on first use and cached."""
