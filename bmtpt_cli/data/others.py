"""The other tasks of SPEC §6–§7: the four extra targets and the expanded source set.

Benchmark "others" (target tasks): WinoGrande, Yelp-2, SciTail, PAWS-Wiki.
Benchmark "source12" (the expanded 12-task source set adds these to `glue6`, with WinoGrande):
AG News, CommonsenseQA, OpenBookQA, ARC (Challenge), ANLI (rounds 1–3 together).

Representations:
- Classification tasks: the fields as text, `label` the index into the label words.
- WinoGrande: fields (sentence, option1, option2) — both options are shown (a baseline bug showed
  option1 twice, SPEC §7); the target is the right option's text and `candidates` are the two
  options, so rank scoring chooses between them.
- Multiple choice (CommonsenseQA, OpenBookQA, ARC): fields (question, choices), where `choices`
  is the choice texts joined with " | " (e.g. `choices: a bank | a library | a park`); the target is
  the right choice's text (not its letter) and `candidates` are the choice texts.

Where the data comes from: the hub repos of SPEC §9, or with --data-dir the family folder
`others/<Task>` holding JSON-lines files named by official split (`train.jsonl`,
`validation.jsonl` or `dev.jsonl`, `test.jsonl`; ANLI `train_r1.jsonl` … `test_r3.jsonl`) whose
rows have the hub's keys (a `fields.json` may rename them, see `sources.jsonl_reader`). The same
normaliser reads hub and local rows. Unlabelled rows (label -1, answer "", missing answerKey
value "") are skipped, as the hub's unlabelled test splits have them; any other bad value is a
one-line error naming the file and line (hub: the row index).
"""

from __future__ import annotations

from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import Normaliser, field, jsonl_reader, label_id, locate, row_parser
from bmtpt_cli.data.splits import LARGE, SMALL, SplitRule
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError, excerpt

CHOICE_SEPARATOR = " | "
"""Joins the choice texts of a multiple-choice question into its `choices` field."""

UNLABELLED = (None, "", -1, "-1")
"""Label values of unlabelled rows (the hub's test splits): such rows are skipped."""


# ---------------------------------------------------------------------------------------------
# Normalisers: raw row (hub or JSONL, same keys) -> record


def classification(fields: dict[str, str], label_key: str, labels: dict) -> Normaliser:
    """Normaliser of a classification row: record field <- row key as given, label via `labels`."""

    def normalise(row: dict, where: Path | str, position: int | str) -> dict | None:
        value = field(row, label_key, where, position)
        if value in UNLABELLED:
            return None
        record = {name: field(row, key, where, position, text=True) for name, key in fields.items()}
        record["label"] = label_id(value, labels, where, position, digits=True, bools=False)
        return record

    return normalise


def winogrande(row: dict, where: Path | str, position: int | str) -> dict | None:
    """A WinoGrande row -> sentence, both options, the right option as label, the options as candidates."""
    answer = field(row, "answer", where, position)
    if answer in UNLABELLED:
        return None
    options = (field(row, "option1", where, position, text=True), field(row, "option2", where, position, text=True))
    choice = label_id(answer, {1: 0, 2: 1}, where, position, digits=True, bools=False)
    return {
        "sentence": field(row, "sentence", where, position, text=True),
        "option1": options[0],
        "option2": options[1],
        "label": options[choice],
        "candidates": options,
    }


def choice_texts(row: dict, where: Path | str, position: int | str) -> tuple[list[str], list[str]]:
    """The (labels, texts) of a row's `choices` {"label": [...], "text": [...]}, checked."""
    choices = field(row, "choices", where, position)
    labels = field(choices, "label", where, position) if isinstance(choices, dict) else None
    texts = field(choices, "text", where, position) if isinstance(choices, dict) else None
    if (
        not isinstance(labels, list)
        or not isinstance(texts, list)
        or len(labels) != len(texts)
        or len(texts) < 2
        or not all(isinstance(t, str) and t.strip() for t in texts)
    ):
        raise BmtptError(
            f"{locate(where, position)}: field 'choices' must be {{\"label\": [...], \"text\": [...]}} "
            f"with as many labels as texts (at least 2, non-empty), got {excerpt(choices)}"
        )
    return [str(label).strip() for label in labels], texts


def multiple_choice(question_key: str) -> Normaliser:
    """Normaliser of a multiple-choice row (question, choices, answerKey) -> question, choices, text label.

    The answer key is looked up in `choices.label`, so letter keys (A–E) and digit keys (ARC's
    "1"–"4") both work.
    """

    def normalise(row: dict, where: Path | str, position: int | str) -> dict | None:
        key = field(row, "answerKey", where, position)
        if key in UNLABELLED:
            return None
        labels, texts = choice_texts(row, where, position)
        answer = str(key).strip()
        if answer not in labels:
            raise BmtptError(
                f"{locate(where, position)}: answerKey {excerpt(key)} is not one of the choice labels {excerpt(', '.join(labels), quoted=False)}"
            )
        return {
            "question": field(row, question_key, where, position, text=True),
            "choices": CHOICE_SEPARATOR.join(texts),
            "label": texts[labels.index(answer)],
            "candidates": tuple(texts),
        }

    return normalise


# ---------------------------------------------------------------------------------------------
# The tasks


def _ids(count: int) -> dict[int, int]:
    """Integer labels 0..count-1 mapped to themselves (`label_id(..., digits=True)` accepts digit strings)."""
    return {i: i for i in range(count)}


def _task(
    name: str,
    benchmark: str,
    input_fields: tuple[str, ...],
    label_words: tuple[str, ...] | None,
    rule: SplitRule,
    hub: tuple[str, str | None],
    folders: tuple[str, ...],
    normalise: Normaliser,
    keys: tuple[str, ...],
    description: str,
) -> Task:
    """One task: accuracy, the hub repo/config, and the generic JSONL reader over the hub's keys."""
    repo, config = hub
    return benchmark_task(
        name=name,
        benchmark=benchmark,
        input_fields=input_fields,
        label_words=label_words,
        metrics=("accuracy",),
        rule=rule,
        hub=HubSource(repo, config, normalise),
        local=LocalSource("others", folders, jsonl_reader(row_parser(normalise), keys=keys)),
        description=description,
    )


_OWN = SplitRule("O", {"train": "train", "validation": "validation", "test": "test"})
_ANLI = SplitRule(
    "O",
    {
        "train": "train_r1+train_r2+train_r3",
        "validation": "dev_r1+dev_r2+dev_r3",
        "test": "test_r1+test_r2+test_r3",
    },
)
_MC_FIELDS = ("question", "choices")


def _target_tasks() -> list[Task]:
    """WinoGrande, Yelp-2, SciTail, PAWS-Wiki (benchmark "others")."""
    return [
        # winogrande_xl: 40k train, so L (official validation as test; its test has no labels).
        # The repo was script-based until 2025: if `main` fails, `load_hub_split` tries the
        # parquet conversion; pin a revision in HubSource if even that changes.
        _task(
            "winogrande", "others", ("sentence", "option1", "option2"), None, LARGE,
            ("allenai/winogrande", "winogrande_xl"), ("WinoGrande", "winogrande"),
            winogrande, ("sentence", "option1", "option2", "answer"),
            "fill the blank with the right one of two options",
        ),
        # train/test only: L with the official test as test.
        _task(
            "yelp_polarity", "others", ("sentence",), ("negative", "positive"), SplitRule("L", test_split="test"),
            ("fancyzhx/yelp_polarity", None), ("Yelp-2", "yelp_polarity", "Yelp", "yelp"),
            classification({"sentence": "text"}, "label", _ids(2)), ("text", "label"),
            "Yelp review polarity (Yelp-2)",
        ),
        # S as SPEC §7 says: full train, official validation halved into dev and test.
        _task(
            "scitail", "others", ("premise", "hypothesis"), ("entailment", "neutral"), SMALL,
            ("allenai/scitail", "snli_format"), ("SciTail", "scitail"),
            classification({"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
                           {"entailment": 0, "neutral": 1}),
            ("sentence1", "sentence2", "gold_label"),
            "science question entailment",
        ),
        _task(
            "paws", "others", ("sentence1", "sentence2"), ("not_paraphrase", "paraphrase"), _OWN,
            ("google-research-datasets/paws", "labeled_final"), ("PAWS", "paws", "PAWS-Wiki"),
            classification({"sentence1": "sentence1", "sentence2": "sentence2"}, "label", _ids(2)),
            ("sentence1", "sentence2", "label"),
            "PAWS-Wiki: paraphrase or not, with high word overlap",
        ),
    ]


def _source_tasks() -> list[Task]:
    """AG News, CommonsenseQA, OpenBookQA, ARC-Challenge, ANLI (benchmark "source12")."""
    return [
        # train/test only: L with the official test as test. Hub order 0 World 1 Sports 2 Business 3 Sci/Tech.
        _task(
            "ag_news", "source12", ("sentence",), ("world", "sports", "business", "science"),
            SplitRule("L", test_split="test"),
            ("fancyzhx/ag_news", None), ("AGNews", "ag_news", "AG-News"),
            classification({"sentence": "text"}, "label", _ids(4)), ("text", "label"),
            "news topic: world, sports, business, science/technology",
        ),
        # the official test has no answer keys: L, official validation as test.
        _task(
            "commonsense_qa", "source12", _MC_FIELDS, None, LARGE,
            ("tau/commonsense_qa", None), ("CommonsenseQA", "commonsense_qa"),
            multiple_choice("question"), ("question", "choices", "answerKey"),
            "five-way multiple-choice commonsense questions",
        ),
        # labelled train/validation/test: O, each split its own.
        _task(
            "openbookqa", "source12", _MC_FIELDS, None, _OWN,
            ("allenai/openbookqa", "main"), ("OpenBookQA", "openbookqa"),
            multiple_choice("question_stem"), ("question_stem", "choices", "answerKey"),
            "four-way multiple-choice elementary science questions",
        ),
        # the Challenge set; labelled train/validation/test: O. Some answer keys are digits.
        _task(
            "arc", "source12", _MC_FIELDS, None, _OWN,
            ("allenai/ai2_arc", "ARC-Challenge"), ("ARC", "arc", "ARC-Challenge"),
            multiple_choice("question"), ("question", "choices", "answerKey"),
            "ARC-Challenge grade-school science multiple choice",
        ),
        # rounds 1-3 joined: O, train_r1+train_r2+train_r3 etc.
        _task(
            "anli", "source12", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), _ANLI,
            ("facebook/anli", None), ("ANLI", "anli"),
            classification({"premise": "premise", "hypothesis": "hypothesis"}, "label", _ids(3)),
            ("premise", "hypothesis", "label"),
            "adversarial NLI, rounds 1-3",
        ),
    ]


OTHER_TASKS: dict[str, Task] = {task.name: task for task in (*_target_tasks(), *_source_tasks())}
"""The four extra target tasks and the five added source tasks by registry name."""
