"""The SuperGLUE tasks: official JSONL layout, split protocol, formatting, hub rows, bad data.

Every file here is written into tmp_path in the official SuperGLUE formats, with invented text.
The last tests read the real files under shared/data/superglue in place when they exist.
"""

import json
import re
from pathlib import Path

import pytest

from bmtpt_cli.data import benchmark, splits, superglue
from bmtpt_cli.data.superglue import (
    SUPERGLUE_TASKS,
    build_superglue_tasks,
    normalise_multirc,
    normalise_record,
    normalise_wsc,
    parse_wsc,
    record_passage,
)
from bmtpt_cli.errors import BmtptError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_task(data_dir: Path, folder: str, train: list, val: list) -> Path:
    """Official layout: data_dir/superglue/<folder>/train.jsonl and val.jsonl."""
    write_jsonl(data_dir / "superglue" / folder / "train.jsonl", train)
    write_jsonl(data_dir / "superglue" / folder / "val.jsonl", val)
    return data_dir / "superglue" / folder


def split_sizes(task, data_dir) -> dict:
    return {split: len(task.load_records(split, data_dir)) for split in ("train", "validation", "test")}


# --- invented rows in the official formats ---------------------------------------------------


def boolq_row(i: int, label: bool) -> dict:
    question, passage = f"is the lantern number {i} lit", f"Lantern {i} hangs by the mill door."
    return {"question": question, "passage": passage, "idx": i, "label": label}


def cb_row(i: int, label: str) -> dict:
    premise = f"The kettle whistled {i} times before anyone moved."
    return {"premise": premise, "hypothesis": "Someone moved the kettle.", "label": label, "idx": i}


def wic_row(i: int, label: bool) -> dict:
    return {
        "word": "bank", "sentence1": f"The canoe drifted to bank {i}.",
        "sentence2": "She opened an account at the bank.", "idx": i, "label": label,
        "start1": 21, "start2": 28, "end1": 25, "end2": 32, "version": 1.1,
    }


WSC_TEXT = "The gardener thanked Mrs. Olsen because she had watered the  tulips ."


def wsc_row(i: int, label: bool, text: str | None = None, span1=(3, "Mrs. Olsen"), span2=(6, "she")) -> dict:
    text = f"{WSC_TEXT} Day {i}." if text is None else text
    target = {"span2_index": span2[0], "span1_index": span1[0], "span1_text": span1[1], "span2_text": span2[1]}
    return {"text": text, "target": target, "idx": i, "label": label}


def multirc_passage(p: int, question_ids: list[int], options: int) -> dict:
    """A passage whose questions have `options` answer options each (labels alternate 1, 0)."""
    questions = [
        {
            "question": f"Which bell rang in tower {q}?",
            "answers": [{"text": f"bell {q}.{a}", "idx": 10 * q + a, "label": int(a % 2 == 0)} for a in range(options)],
            "idx": q,
        }
        for q in question_ids
    ]
    passage = {"text": f"Tower story {p}. The bells were old.", "questions": questions}
    return {"idx": p, "version": 1.1, "passage": passage}


def span_of(text: str, piece: str, occurrence: int = 0) -> dict:
    """ReCoRD span of the `occurrence`-th `piece` in `text` (end inclusive)."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(piece, start + 1)
    return {"start": start, "end": start + len(piece) - 1}


RECORD_TEXT = (
    "The Harbor Council met in Velmora on Monday. Chair Ada Brenn spoke first, and Brenn later thanked Velmora."
    "\n@highlight\nVelmora council approves a new pier\n@highlight\nAda Brenn praised the plan!"
)


def record_passage_row(p: int, qas: list[tuple[int, list[tuple[str, int]]]]) -> dict:
    """A ReCoRD passage; qas: (query idx, [(answer text, occurrence)])."""
    mentions = [("Harbor Council", 0), ("Velmora", 0), ("Ada Brenn", 0), ("Brenn", 1), ("Velmora", 1)]
    entities = [span_of(RECORD_TEXT, entity, k) for entity, k in mentions]
    return {
        "source": "invented",
        "passage": {"text": RECORD_TEXT, "entities": entities},
        "qas": [
            {
                "query": f"Plan {q}: @placeholder will build the pier next spring.",
                "answers": [{**span_of(RECORD_TEXT, text, k), "text": text} for text, k in answers],
                "idx": q,
            }
            for q, answers in qas
        ],
        "idx": p,
    }


# --- registry shape -----------------------------------------------------------------------------


def test_the_six_tasks():
    expected = {
        "boolq": (("question", "passage"), ("false", "true"), ("accuracy",), "boolq"),
        "cb": (("premise", "hypothesis"), ("entailment", "contradiction", "neutral"), ("accuracy", "macro_f1"), "cb"),
        "multirc": (("question", "answer", "paragraph"), ("false", "true"), ("multirc_f1a", "multirc_em"), "multirc"),
        "wic": (("sentence1", "sentence2", "word"), ("false", "true"), ("accuracy",), "wic"),
        "wsc": (("text",), ("false", "true"), ("accuracy",), "wsc.fixed"),
        "record": (("query", "entities", "passage"), None, ("record_em", "record_f1"), "record"),
    }
    assert list(SUPERGLUE_TASKS) == list(expected)
    for name, (fields, words, metrics, config) in expected.items():
        task = SUPERGLUE_TASKS[name]
        shape = (task.name, task.benchmark, task.input_fields, task.label_words, task.metrics)
        assert shape == (name, "superglue", fields, words, metrics)
        assert task.source == f"aps/super_glue ({config})"
    assert SUPERGLUE_TASKS["record"].split_rule == splits.LARGE.describe()
    assert SUPERGLUE_TASKS["multirc"].split_rule == superglue.QUESTION_SPLIT
    assert all(SUPERGLUE_TASKS[n].split_rule == splits.SMALL.describe() for n in ("boolq", "cb", "wic", "wsc"))




# --- split sizes and split hygiene --------------------------------------------------------------


SMALL_TASKS = [
    ("boolq", "BoolQ", boolq_row, [True, False]),
    ("cb", "CB", cb_row, ["entailment", "contradiction", "neutral"]),
    ("wic", "WiC", wic_row, [True, False]),
    ("wsc", "WSC", wsc_row, [True, False]),
]


def numbers(records: list[dict], key: str) -> list[int]:
    """The row number each invented record carries in its first input field."""
    return [int(re.search(r"\d+", record[key]).group()) for record in records]


@pytest.mark.parametrize(("name", "folder", "make", "labels"), SMALL_TASKS)
@pytest.mark.parametrize(("n_train", "n_val"), [(3, 7), (4, 6)])
def test_small_rule_split_sizes(tmp_path, name, folder, make, labels, n_train, n_val):
    write_task(tmp_path, folder, [make(i, labels[i % len(labels)]) for i in range(n_train)],
               [make(100 + i, labels[i % len(labels)]) for i in range(n_val)])
    task = build_superglue_tasks()[name]
    assert split_sizes(task, tmp_path) == {"train": n_train, "validation": n_val // 2, "test": n_val - n_val // 2}
    key = task.input_fields[0]
    records = {s: task.load_records(s, tmp_path) for s in ("train", "validation", "test")}
    assert numbers(records["train"], key) == list(range(n_train))  # the whole train file, in order
    assert sorted(numbers(records["validation"] + records["test"], key)) == list(range(100, 100 + n_val))


def test_small_rule_dev_and_test_partition_the_validation_file(tmp_path):
    labels = ["entailment", "contradiction", "neutral"]
    val = [cb_row(100 + i, labels[i % 3]) for i in range(9)]
    write_task(tmp_path, "CB", [cb_row(0, "neutral")], val)
    task = build_superglue_tasks()["cb"]
    dev, test = task.load_records("validation", tmp_path), task.load_records("test", tmp_path)
    premises = sorted(r["premise"] for r in dev + test)
    assert premises == sorted(row["premise"] for row in val)
    assert (len(dev), len(test)) == (4, 5)
    assert task.load_records("validation", tmp_path) == dev  # deterministic


def test_official_test_file_is_never_read(tmp_path):
    folder = write_task(tmp_path, "CB", [cb_row(0, "neutral")], [cb_row(1, "entailment"), cb_row(2, "neutral")])
    (folder / "test.jsonl").write_text("{not json at all\n", encoding="utf-8")
    task = build_superglue_tasks()["cb"]
    assert split_sizes(task, tmp_path) == {"train": 1, "validation": 1, "test": 1}


@pytest.mark.parametrize("layout", ["superglue/CB", "superglue/cb", "CB"])
def test_folder_layouts(tmp_path, layout):
    write_jsonl(tmp_path / layout / "train.jsonl", [cb_row(0, "neutral")])
    write_jsonl(tmp_path / layout / "val.jsonl", [cb_row(1, "entailment"), cb_row(2, "neutral")])
    assert split_sizes(build_superglue_tasks()["cb"], tmp_path) == {"train": 1, "validation": 1, "test": 1}


# --- formatting, one example per task ----------------------------------------------------------


def first_train_example(tmp_path, name, folder, row, **kwargs):
    write_task(tmp_path, folder, [row], [row, row])
    return build_superglue_tasks()[name].examples("train", data_dir=tmp_path, **kwargs)[0]


def test_boolq_format(tmp_path):
    example = first_train_example(tmp_path, "boolq", "BoolQ", boolq_row(7, True))
    assert example.source == "boolq question: is the lantern number 7 lit passage: Lantern 7 hangs by the mill door."
    assert (example.target, example.label) == ("true", 1)
    assert first_train_example(tmp_path / "b", "boolq", "BoolQ", boolq_row(7, False)).target == "false"


@pytest.mark.parametrize(("label", "digit"), [("entailment", "0"), ("contradiction", "1"), ("neutral", "2")])
def test_cb_format_and_digit_targets(tmp_path, label, digit):
    example = first_train_example(tmp_path, "cb", "CB", cb_row(3, label))
    assert example.source == (
        "cb premise: The kettle whistled 3 times before anyone moved. hypothesis: Someone moved the kettle."
    )
    assert example.target == label
    assert first_train_example(tmp_path / "d", "cb", "CB", cb_row(3, label), label_style="digits").target == digit
    taskless = first_train_example(tmp_path / "t", "cb", "CB", cb_row(3, label), taskless=True)
    assert taskless.source.startswith("premise: The kettle")


def test_wic_format(tmp_path):
    example = first_train_example(tmp_path, "wic", "WiC", wic_row(2, False))
    assert example.source == (
        "wic sentence1: The canoe drifted to bank 2. sentence2: She opened an account at the bank. word: bank"
    )
    assert example.target == "false"


def test_wsc_format_marks_noun_and_pronoun(tmp_path):
    example = first_train_example(tmp_path, "wsc", "WSC", wsc_row(0, True, text=WSC_TEXT))
    # the two spaces before "tulips" are the text's own and stay
    assert example.source == "wsc text: The gardener thanked * Mrs. Olsen * because # she # had watered the  tulips ."
    assert example.target == "true"


def test_wsc_span_matching_is_case_punctuation_and_possessive_blind():
    row = wsc_row(0, False, text="Lena's cat ignored LENA, so she sulked.", span1=(0, "Lena"), span2=(5, "She"))
    assert parse_wsc(row, Path("w.jsonl"), 1)[0]["text"] == "* Lena's * cat ignored LENA, so # she # sulked."
    row = wsc_row(0, False, text="Lena's cat ignored LENA, so she sulked.", span1=(3, "lena"), span2=(5, "she"))
    assert parse_wsc(row, Path("w.jsonl"), 1)[0]["text"] == "Lena's cat ignored * LENA, * so # she # sulked."


def test_wsc_index_off_by_one_uses_the_nearest_match():
    text = "Tom hid the key because he might want to use it later ."
    row = wsc_row(0, False, text=text, span1=(2, "the key"), span2=(9, "it"))  # "it" is word 10
    assert parse_wsc(row, Path("w.jsonl"), 1)[0]["text"] == "Tom hid * the key * because he might want to use # it # later ."


def t5_wsc_marking(text: str, span1: tuple[int, str], span2: tuple[int, str]) -> str:
    """The T5/ATTEMPT/MPT WSC marking, verbatim (t5.data.preprocessors.wsc, ATTEMPT
    SuperGLUEWSCFixed): the noun is marked by a regex at its word index, then the pronoun at its
    index shifted by the two marks when the noun comes first. Used only as an oracle on rows where
    its regex finds the noun (plain words, single spaces)."""

    def mark_span(text, span_str, span_idx, mark):
        pattern = re.sub("W", span_str, re.sub("N", str(span_idx), r"^((?:\S+\s){N})(W)"))
        return re.sub(pattern, r"\1{0} \2 {0}".format(mark), text)

    text = mark_span(text, span1[1], span1[0], "*")
    return mark_span(text, span2[1], span2[0] + 2 * int(span1[0] < span2[0]), "#")


OVERLAPPING_WSC = [  # (text, noun span, pronoun span, the marked text)
    ("Arthur and Celeste , and their mothers are worried .", (5, "their mothers"), (5, "their"),
     "Arthur and Celeste , and * their mothers * are worried ."),  # same start: the shape of val.jsonl line 96
    ("Tom saw the man himself at the door .", (2, "the man himself"), (4, "himself"),
     "Tom saw * the man himself * at the door ."),  # pronoun at the noun's end
    ("Tom saw the man himself at the door .", (2, "the man himself"), (3, "man"),
     "Tom saw * the man himself * at the door ."),  # pronoun strictly inside
    ("Tom met his own brother today .", (4, "brother"), (2, "his own brother"),
     "Tom met his own * brother * today ."),  # noun inside the pronoun span
]


@pytest.mark.parametrize("text,noun,pronoun,marked", OVERLAPPING_WSC)
def test_wsc_overlapping_spans_keep_the_noun_marks_and_leave_the_pronoun_unmarked(text, noun, pronoun, marked):
    assert t5_wsc_marking(text, noun, pronoun) == marked  # what the baselines feed the model
    row = wsc_row(0, False, text=text, span1=noun, span2=pronoun)
    assert parse_wsc(row, Path("w.jsonl"), 1)[0]["text"] == marked


def test_wsc_adjacent_spans_are_both_marked():
    row = wsc_row(0, True, text="Ask her mother today .", span1=(2, "mother"), span2=(1, "her"))
    assert parse_wsc(row, Path("w.jsonl"), 1)[0]["text"] == "Ask # her # * mother * today ."
    assert t5_wsc_marking("Ask her mother today .", (2, "mother"), (1, "her")) == "Ask # her # * mother * today ."


def test_wsc_span_far_from_its_index_is_an_error(tmp_path):
    good = wsc_row(0, True)
    bad = wsc_row(1, True, span2=(1, "she"))  # "gardener", and "she" is 5 words away
    folder = write_task(tmp_path, "WSC", [good, bad], [good, good])
    with pytest.raises(BmtptError) as error:
        build_superglue_tasks()["wsc"].load_records("train", tmp_path)
    message = str(error.value)
    assert str(folder / "train.jsonl") in message and "line 2" in message and "'she'" in message
    assert "\n" not in message


def test_multirc_format_and_groups(tmp_path):
    write_task(tmp_path, "MultiRC", [multirc_passage(0, [0, 1], 3)], [multirc_passage(5, [7], 2)] * 2)
    examples = build_superglue_tasks()["multirc"].examples("train", data_dir=tmp_path)
    assert len(examples) == 6
    assert examples[0].source == (
        "multirc question: Which bell rang in tower 0? answer: bell 0.0 paragraph: Tower story 0. The bells were old."
    )
    assert [(e.target, e.group) for e in examples] == [
        ("true", "0-0"), ("false", "0-0"), ("true", "0-0"), ("true", "0-1"), ("false", "0-1"), ("true", "0-1")
    ]


@pytest.mark.parametrize(("n_questions", "dev_questions"), [(5, 2), (6, 3), (1, 0)])
def test_multirc_splits_by_whole_questions(tmp_path, n_questions, dev_questions):
    # questions with different numbers of options: a row-level split would cut some of them
    val = [multirc_passage(p, [10 * p], 2 + p % 3) for p in range(n_questions)]
    train = [multirc_passage(50, [500, 501], 2)]
    write_task(tmp_path, "MultiRC", train, val)
    task = build_superglue_tasks()["multirc"]
    records = {s: task.load_records(s, tmp_path) for s in ("train", "validation", "test")}
    groups = {s: {r["group"] for r in rs} for s, rs in records.items()}
    assert len(records["train"]) == 4 and groups["train"] == {"50-500", "50-501"}
    assert len(groups["validation"]) == dev_questions and len(groups["test"]) == n_questions - dev_questions
    assert not groups["validation"] & groups["test"]
    options = {f"{p}-{10 * p}": 2 + p % 3 for p in range(n_questions)}
    for split in ("validation", "test"):
        for group in groups[split]:
            assert sum(r["group"] == group for r in records[split]) == options[group]
    assert len(records["validation"]) + len(records["test"]) == sum(options.values())
    assert task.load_records("test", tmp_path) == records["test"]  # deterministic


def test_multirc_group_halving_follows_seed_42():
    records = [{"group": f"g{i}", "x": k} for i in range(10) for k in range(2)]
    dev, test = superglue.halve_by_group(records)
    order = splits.shuffled([f"g{i}" for i in range(10)], 42)
    assert [r["group"] for r in dev] == [g for g in order[:5] for _ in range(2)]
    assert [r["group"] for r in test] == [g for g in order[5:] for _ in range(2)]


def test_record_passage_highlights():
    text = "Story ends.\n@highlight\nFirst point\n@highlight\nSecond point"
    assert record_passage(text) == "Story ends. First point. Second point"
    assert record_passage('He said "go"\n@highlight\nPoint?\n@highlight\nLast') == 'He said "go" Point? Last'
    assert record_passage("No markers here.") == "No markers here."


RECORD_PASSAGE = (
    "The Harbor Council met in Velmora on Monday. Chair Ada Brenn spoke first, and Brenn later thanked Velmora. "
    "Velmora council approves a new pier. Ada Brenn praised the plan!"
)


def write_record(data_dir: Path, n_train: int, val_qas: list) -> Path:
    train = [record_passage_row(p, [(100 + p, [("Velmora", 0), ("Velmora", 1)])]) for p in range(n_train)]
    val = [record_passage_row(900, val_qas)]
    return write_task(data_dir, "ReCoRD", train, val)


def test_record_format_and_test_split_keeps_one_example_per_question(tmp_path):
    questions = [(1, [("Ada Brenn", 0), ("Brenn", 1), ("Ada Brenn", 1)]), (2, []), (3, [("Harbor Council", 0)])]
    write_record(tmp_path, 3, questions)
    task = build_superglue_tasks()["record"]
    test = task.examples("test", data_dir=tmp_path)
    assert len(test) == 2  # the unanswered question 2 is skipped
    example = test[0]
    assert example.source == (
        "record query: Plan 1: @placeholder will build the pier next spring. "
        "entities: Ada Brenn, Brenn, Harbor Council, Velmora "
        f"passage: {RECORD_PASSAGE}"
    )
    assert (example.target, example.label, example.group) == ("Ada Brenn", None, "900-1")
    assert example.answers == ("Ada Brenn", "Brenn") and example.references == ("Ada Brenn", "Brenn")
    assert example.candidates == ("Ada Brenn", "Brenn", "Harbor Council", "Velmora")
    assert (test[1].target, test[1].answers, test[1].group) == ("Harbor Council", ("Harbor Council",), "900-3")


def test_record_large_rule_and_training_expansion(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 2)
    train = [record_passage_row(p, [(100 + p, [("Velmora", 0), ("Velmora", 1)])]) for p in range(4)]
    train.append(record_passage_row(9, [(109, [("Ada Brenn", 0), ("Brenn", 1)]), (110, [("Harbor Council", 0)])]))
    write_task(tmp_path, "ReCoRD", train, [record_passage_row(900, [(1, [("Velmora", 0)]), (2, [("Brenn", 1)])])])
    task = build_superglue_tasks()["record"]
    assert split_sizes(task, tmp_path) == {"train": 4, "validation": 2, "test": 2}
    train_records = task.load_records("train", tmp_path) + task.load_records("validation", tmp_path)
    assert sorted(r["group"] for r in train_records) == ["0-100", "1-101", "2-102", "3-103", "9-109", "9-110"]
    # one example per distinct gold answer in training, one per question elsewhere
    expected = sum(len(r["answers"]) for r in task.load_records("train", tmp_path))
    examples = task.examples("train", data_dir=tmp_path)
    assert len(examples) == expected
    assert all(len(e.answers) <= 1 or e.target in e.answers for e in examples)
    dev = task.examples("validation", data_dir=tmp_path)
    assert len(dev) == 2 and all(e.candidates == ("Ada Brenn", "Brenn", "Harbor Council", "Velmora") for e in dev)


def test_record_training_question_with_two_answers_gives_two_examples(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 0)
    write_task(tmp_path, "ReCoRD", [record_passage_row(9, [(109, [("Brenn", 1), ("Ada Brenn", 0), ("Brenn", 1)])])],
               [record_passage_row(900, [(1, [("Velmora", 0)])])])
    examples = build_superglue_tasks()["record"].examples("train", data_dir=tmp_path)
    assert [e.target for e in examples] == ["Ada Brenn", "Brenn"]
    assert all(e.group == "9-109" and e.answers == ("Ada Brenn", "Brenn") for e in examples)


# --- hub rows give the same records as the files -----------------------------------------------

_HUB = "aps/super_glue (x) train"


def hub_rows_from_jsonl(name: str, row: dict) -> list[dict]:
    """The hub rows the `aps/super_glue` builder makes from one official JSONL line."""
    if name == "multirc":
        return [
            {"paragraph": row["passage"]["text"], "question": q["question"], "answer": a["text"],
             "idx": {"paragraph": row["idx"], "question": q["idx"], "answer": a["idx"]}, "label": a["label"]}
            for q in row["passage"]["questions"] for a in q["answers"]
        ]
    if name == "record":
        text = row["passage"]["text"]
        entities = list({text[e["start"] : e["end"] + 1] for e in row["passage"]["entities"]})[::-1]  # a set: any order
        return [
            {"passage": text, "query": qa["query"], "entities": entities, "entity_spans": {},
             "answers": sorted({a["text"] for a in qa["answers"]}), "idx": {"passage": row["idx"], "query": qa["idx"]}}
            for qa in row["qas"]
        ]
    flat = {**row, **row.pop("target", {})} if name == "wsc" else dict(row)
    label = row["label"]
    flat["label"] = {"entailment": 0, "contradiction": 1, "neutral": 2}[label] if name == "cb" else int(label)
    return [flat]


HUB_CASES = {
    "boolq": ("BoolQ", [boolq_row(0, True), boolq_row(1, False)]),
    "cb": ("CB", [cb_row(0, "entailment"), cb_row(1, "contradiction"), cb_row(2, "neutral")]),
    "wic": ("WiC", [wic_row(0, True), wic_row(1, False)]),
    "wsc": ("WSC", [wsc_row(0, True), wsc_row(1, False)]),
    "multirc": ("MultiRC", [multirc_passage(0, [0, 1], 3), multirc_passage(1, [2], 2)]),
    "record": ("ReCoRD", [record_passage_row(0, [(1, [("Brenn", 1), ("Ada Brenn", 0)]), (2, [("Velmora", 1)])]),
                          record_passage_row(1, [(3, [("Harbor Council", 0)])])]),
}


@pytest.mark.parametrize("name", sorted(HUB_CASES))
@pytest.mark.parametrize("lowercase", [False, True])
def test_every_task_reads_its_official_folder(tmp_path, name, lowercase):
    folder, rows = HUB_CASES[name]
    write_task(tmp_path, folder.lower() if lowercase else folder, rows, rows)
    assert build_superglue_tasks()[name].load_records("test", tmp_path)


def fake_hub(monkeypatch, rows_by_split: dict, calls: list | None = None):
    """Replace the hub with hand-built rows; `calls` collects (repo, config, split)."""

    def load(repo, config, split, *, keep=None, **options):
        if calls is not None:
            calls.append((repo, config, split))
        return [dict(row) for row in rows_by_split[split] if keep is None or keep(row)]

    monkeypatch.setattr(benchmark, "load_hub_split", load)


@pytest.mark.parametrize("name", sorted(HUB_CASES))
def test_hub_rows_give_the_same_records_as_the_jsonl_files(tmp_path, monkeypatch, name):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 1)
    folder, rows = HUB_CASES[name]
    write_task(tmp_path, folder, rows, rows)
    hub = [r for row in json.loads(json.dumps(rows)) for r in hub_rows_from_jsonl(name, row)]
    calls = []
    fake_hub(monkeypatch, {"train": hub, "validation": hub}, calls)
    task = build_superglue_tasks()[name]
    for split in ("train", "validation", "test"):
        from_files = task.load_records(split, tmp_path)
        assert from_files and task.load_records(split, None) == from_files
    config = {"wsc": "wsc.fixed"}.get(name, name)
    assert {c[:2] for c in calls} == {("aps/super_glue", config)} and {c[2] for c in calls} == {"train", "validation"}


def test_hub_unlabelled_rows_are_skipped(monkeypatch):
    rows = [{**cb_row(i, "x"), "label": i % 3} for i in range(3)]
    fake_hub(monkeypatch, {"train": rows + [{**cb_row(9, "x"), "label": -1}], "validation": rows * 2})
    task = build_superglue_tasks()["cb"]
    assert split_sizes(task, None) == {"train": 3, "validation": 3, "test": 3}
    assert [e.target for e in task.examples("train")] == ["entailment", "contradiction", "neutral"]
    assert normalise_multirc({"label": -1}, _HUB, 0) is None
    assert normalise_wsc({"label": -1}, _HUB, 0) is None
    unanswered = {"passage": "p", "query": "q", "entities": ["e"], "answers": [], "idx": {"passage": 0, "query": 1}}
    assert normalise_record(unanswered, _HUB, 0) is None


@pytest.mark.parametrize(
    ("name", "row", "expected"),
    [
        ("cb", {**cb_row(0, "x"), "label": 7}, r"aps/super_glue \(cb\) train row 1: unknown label 7"),
        ("boolq", {"question": "q", "label": 0}, r"aps/super_glue \(boolq\) train row 1: missing field 'passage'"),
        ("multirc", {"question": "q", "answer": "a", "paragraph": "p", "idx": {"paragraph": 0}, "label": 1},
         r"aps/super_glue \(multirc\) train row 1: missing field 'question'"),
        ("wsc", {"text": WSC_TEXT, "span1_index": 3, "span1_text": "Mrs. Olsen",
                 "span2_index": 0, "span2_text": "she", "label": 0},
         r"aps/super_glue \(wsc.fixed\) train row 1: WSC span 'she' is not at word 0"),
        ("record", {"passage": "p", "query": "q", "answers": ["e"], "idx": {"passage": 0, "query": 1}},
         r"aps/super_glue \(record\) train row 1: missing field 'entities'"),
    ],
)
def test_hub_errors_name_the_row(monkeypatch, name, row, expected):
    good = hub_rows_from_jsonl(name, json.loads(json.dumps(HUB_CASES[name][1][0])))[0]
    fake_hub(monkeypatch, {"train": [good, row], "validation": [good]})
    with pytest.raises(BmtptError, match=expected):
        build_superglue_tasks()[name].load_records("train", None)


# --- bad data -------------------------------------------------------------------------------------


def load_error(task_name: str, data_dir: Path, split: str = "train") -> str:
    with pytest.raises(BmtptError) as error:
        build_superglue_tasks()[task_name].load_records(split, data_dir)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_label_names_file_and_line(tmp_path):
    folder = write_task(tmp_path, "CB", [cb_row(0, "neutral"), cb_row(1, "maybe")], [cb_row(2, "neutral")] * 2)
    message = load_error("cb", tmp_path)
    assert str(folder / "train.jsonl") in message and "line 2" in message and "'maybe'" in message


def test_boolq_string_label_is_rejected(tmp_path):
    val = [boolq_row(1, True), {**boolq_row(2, True), "label": "true"}]
    folder = write_task(tmp_path, "BoolQ", [boolq_row(0, True)], val)
    message = load_error("boolq", tmp_path, "validation")
    assert str(folder / "val.jsonl") in message and "line 2" in message and "'true'" in message


def test_missing_field_names_file_line_and_field(tmp_path):
    row = boolq_row(0, True)
    del row["passage"]
    folder = write_task(tmp_path, "BoolQ", [boolq_row(1, False), boolq_row(2, True), row], [boolq_row(3, True)] * 2)
    message = load_error("boolq", tmp_path)
    assert str(folder / "train.jsonl") in message and "line 3" in message and "'passage'" in message


def test_multirc_missing_answer_label(tmp_path):
    passage = multirc_passage(0, [0], 2)
    del passage["passage"]["questions"][0]["answers"][1]["label"]
    folder = write_task(tmp_path, "MultiRC", [multirc_passage(1, [1], 2), passage], [multirc_passage(2, [2], 2)] * 2)
    message = load_error("multirc", tmp_path)
    assert str(folder / "train.jsonl") in message and "line 2" in message and "'label'" in message


def test_record_entity_outside_the_passage(tmp_path):
    row = record_passage_row(0, [(1, [("Velmora", 0)])])
    row["passage"]["entities"].append({"start": 5, "end": 10_000})
    folder = write_task(tmp_path, "ReCoRD", [row], [row])
    message = load_error("record", tmp_path, "test")
    assert str(folder / "val.jsonl") in message and "line 1" in message and "entity span" in message


def test_missing_val_file(tmp_path):
    write_jsonl(tmp_path / "superglue" / "WiC" / "train.jsonl", [wic_row(0, True)])
    message = load_error("wic", tmp_path, "test")
    assert "val.jsonl" in message and str(tmp_path / "superglue" / "WiC") in message and "wic" in message


def test_data_dir_without_the_task_folder(tmp_path):
    write_task(tmp_path, "CB", [cb_row(0, "neutral")], [cb_row(1, "neutral")] * 2)
    message = load_error("wsc", tmp_path)
    assert "no files for task wsc" in message and str(tmp_path / "superglue" / "WSC") in message


def test_invalid_json_names_file_and_line(tmp_path):
    folder = write_task(tmp_path, "WiC", [wic_row(0, True)], [wic_row(1, True)] * 2)
    with open(folder / "train.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"word": \n')
    message = load_error("wic", tmp_path)
    assert str(folder / "train.jsonl") in message and "line 2" in message


# --- the real files in shared/data, read in place --------------------------------------------------

needs_shared = pytest.mark.skipif(not (SHARED_DATA / "superglue").is_dir(), reason="shared/data/superglue is absent")

OFFICIAL_SIZES = {  # train, then the official validation halved
    "cb": (250, 28, 28),
    "boolq": (9427, 1635, 1635),
    "wic": (5428, 319, 319),
    "wsc": (554, 52, 52),
}


@needs_shared
@pytest.mark.parametrize("name", sorted(OFFICIAL_SIZES))
def test_shared_data_split_sizes_and_formatting(name):
    task = SUPERGLUE_TASKS[name]
    sizes = {}
    for split in ("train", "validation", "test"):
        examples = task.examples(split, data_dir=SHARED_DATA)
        sizes[split] = len(examples)
        assert all(e.source.startswith(f"{name} ") and e.target in task.label_words for e in examples)
    assert (sizes["train"], sizes["validation"], sizes["test"]) == OFFICIAL_SIZES[name]


WSC_OVERLAP_SOURCE = (  # official val.jsonl line 96: noun "their mothers" and pronoun "their" both at word 19
    "wsc text: Meanwhile, in the forest, the elephants are calling and hunting high and low for Arthur and Celeste ,"
    " and * their mothers * are very worried. Fortunately, in flying over the town, an old marabou bird has seen them"
    " and come back quickly to tell the news."
)


@needs_shared
def test_shared_data_wsc_marks_every_example():
    sources = [
        e.source for split in ("train", "validation", "test")
        for e in SUPERGLUE_TASKS["wsc"].examples(split, data_dir=SHARED_DATA)
    ]
    assert len(sources) == 554 + 104
    for source in sources:
        words = source.split()
        assert words.count("*") == 2, source
        # the pronoun is marked unless it overlaps the noun (one official row, val.jsonl line 96)
        assert words.count("#") == (0 if source == WSC_OVERLAP_SOURCE else 2), source
    assert sources.count(WSC_OVERLAP_SOURCE) == 1


@needs_shared
def test_shared_data_wsc_val_line_96_marks_nest_as_the_baselines_do():
    path = SHARED_DATA / "superglue" / "WSC" / "val.jsonl"
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[95])
    target = row["target"]
    assert (target["span1_index"], target["span1_text"], target["span2_index"], target["span2_text"]) == (
        19, "their mothers", 19, "their",
    )
    text = parse_wsc(row, path, 96)[0]["text"]
    assert "wsc text: " + text == WSC_OVERLAP_SOURCE
    assert text == t5_wsc_marking(row["text"], (19, "their mothers"), (19, "their"))
    assert "# * their # mothers *" not in text


@needs_shared
def test_shared_data_multirc():
    task = SUPERGLUE_TASKS["multirc"]
    records = {s: task.load_records(s, SHARED_DATA) for s in ("train", "validation", "test")}
    groups = {s: {r["group"] for r in rs} for s, rs in records.items()}
    assert len(records["train"]) == 27243 and len(groups["train"]) == 5131
    assert (len(groups["validation"]), len(groups["test"])) == (476, 477)  # 953 validation questions
    assert len(records["validation"]) + len(records["test"]) == 4848
    assert not groups["validation"] & groups["test"]
    for split in ("validation", "test"):
        assert all(e.target in ("false", "true") and e.group for e in task.examples(split, data_dir=SHARED_DATA))


@needs_shared
def test_shared_data_record_has_no_full_train_file():
    message = load_error("record", SHARED_DATA, "train")
    assert "train.jsonl" in message and "ReCoRD" in message
