"""The other target tasks and the expanded source set: JSONL rows with the hub's keys, one per split.

All text is invented. The local rows use the same keys as the hub rows, so these tests exercise
the normalisers the hub path uses too.
"""

import json
from pathlib import Path

import pytest

from bmtpt_cli.data import splits
from bmtpt_cli.data.others import OTHER_TASKS, classification, multiple_choice, winogrande
from bmtpt_cli.errors import BmtptError

TARGETS = ["winogrande", "yelp_polarity", "scitail", "paws"]
SOURCES = ["ag_news", "commonsense_qa", "openbookqa", "arc", "anli"]


@pytest.fixture
def small_dev(monkeypatch):
    """Rule L takes 1 training example as dev instead of 1,000, so tiny files suffice."""
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 1)


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_splits(folder: Path, files: dict[str, list]) -> None:
    for split, rows in files.items():
        write_jsonl(folder / f"{split}.jsonl", rows)


def sizes(task, data_dir: Path) -> dict[str, int]:
    return {split: len(task.examples(split, data_dir=data_dir)) for split in ("train", "validation", "test")}


def wino(i: int, answer="1") -> dict:
    sentence = f"Pell lent Dorn the ladder {i} because _ was tall."
    return {"sentence": sentence, "option1": "Pell", "option2": "Dorn", "answer": answer}


def text_row(i: int, label=0, key: str = "text") -> dict:
    return {key: f"Invented review number {i}.", "label": label}


def pair(i: int, label, keys=("sentence1", "sentence2"), label_key="label") -> dict:
    return {keys[0]: f"The glass barn {i} is blue.", keys[1]: f"The barn {i} is coloured.", label_key: label}


def mc(i: int, key="B", labels=("A", "B", "C"), question_key="question") -> dict:
    texts = [f"option {label.lower()}{i}" for label in labels]
    return {question_key: f"Which thing {i} floats?", "choices": {"label": list(labels), "text": texts}, "answerKey": key}


def test_names_benchmarks_labels_metrics_and_rules():
    assert sorted(OTHER_TASKS) == sorted(TARGETS + SOURCES)
    assert {n for n, t in OTHER_TASKS.items() if t.benchmark == "others"} == set(TARGETS)
    assert {n for n, t in OTHER_TASKS.items() if t.benchmark == "source12"} == set(SOURCES)
    assert all(t.metrics == ("accuracy",) for t in OTHER_TASKS.values())
    assert {n: t.label_words for n, t in OTHER_TASKS.items()} == {
        "winogrande": None,
        "yelp_polarity": ("negative", "positive"),
        "scitail": ("entailment", "neutral"),
        "paws": ("not_paraphrase", "paraphrase"),
        "ag_news": ("world", "sports", "business", "science"),
        "commonsense_qa": None,
        "openbookqa": None,
        "arc": None,
        "anli": ("entailment", "neutral", "contradiction"),
    }
    assert {n: t.source for n, t in OTHER_TASKS.items()} == {
        "winogrande": "allenai/winogrande (winogrande_xl)",
        "yelp_polarity": "fancyzhx/yelp_polarity",
        "scitail": "allenai/scitail (snli_format)",
        "paws": "google-research-datasets/paws (labeled_final)",
        "ag_news": "fancyzhx/ag_news",
        "commonsense_qa": "tau/commonsense_qa",
        "openbookqa": "allenai/openbookqa (main)",
        "arc": "allenai/ai2_arc (ARC-Challenge)",
        "anli": "facebook/anli",
    }


def test_winogrande_shows_both_options_and_ranks_between_them(tmp_path, small_dev):
    folder = tmp_path / "others" / "WinoGrande"
    write_splits(folder, {"train": [wino(i) for i in range(4)], "validation": [wino(10, "2"), wino(11, "1")]})
    task = OTHER_TASKS["winogrande"]
    assert sizes(task, tmp_path) == {"train": 3, "validation": 1, "test": 2}
    first, second = task.examples("test", data_dir=tmp_path)
    assert first.source == "winogrande sentence: Pell lent Dorn the ladder 10 because _ was tall. option1: Pell option2: Dorn"
    assert (first.target, second.target) == ("Dorn", "Pell")
    assert first.candidates == ("Pell", "Dorn") and first.label is None
    assert task.verbalisers() is None


def test_winogrande_unlabelled_rows_are_skipped_and_bad_answers_named(tmp_path):
    path = write_jsonl(tmp_path / "winogrande" / "validation.jsonl", [wino(0, ""), wino(1, "2"), wino(2, "3")])
    with pytest.raises(BmtptError, match=f"^'{path}' line 3: unknown label '3' \\(expected one of 1, 2\\)$"):
        OTHER_TASKS["winogrande"].examples("test", data_dir=tmp_path)
    write_jsonl(path, [wino(0, ""), wino(1, 2)])
    assert [e.target for e in OTHER_TASKS["winogrande"].examples("test", data_dir=tmp_path)] == ["Dorn"]


def test_yelp_uses_the_official_test_split(tmp_path, small_dev):
    train = [text_row(i, i % 2) for i in range(5)]
    write_splits(tmp_path / "Yelp-2", {"train": train, "test": [text_row(9, "1"), text_row(8, 0)]})
    task = OTHER_TASKS["yelp_polarity"]
    assert sizes(task, tmp_path) == {"train": 4, "validation": 1, "test": 2}
    example = task.examples("test", data_dir=tmp_path)[0]
    assert (example.source, example.target, example.label) == ("yelp_polarity sentence: Invented review number 9.", "positive", 1)
    assert task.examples("test", data_dir=tmp_path, label_style="digits")[1].target == "0"


def test_scitail_halves_validation(tmp_path):
    keys = ("sentence1", "sentence2")
    rows = [pair(i, "entailment" if i % 2 else "neutral", keys, "gold_label") for i in range(6)]
    write_splits(tmp_path / "SciTail", {"train": rows[:3], "validation": rows})
    task = OTHER_TASKS["scitail"]
    assert sizes(task, tmp_path) == {"train": 3, "validation": 3, "test": 3}
    example = task.examples("train", data_dir=tmp_path)[0]
    assert example.source == "scitail premise: The glass barn 0 is blue. hypothesis: The barn 0 is coloured."
    assert example.target == "neutral"


def test_paws_keeps_its_own_splits(tmp_path):
    train = [pair(i, 1) for i in range(3)]
    write_splits(tmp_path / "PAWS", {"train": train, "validation": [pair(5, 0)] * 2, "test": [pair(7, 1)]})
    task = OTHER_TASKS["paws"]
    assert sizes(task, tmp_path) == {"train": 3, "validation": 2, "test": 1}
    (example,) = task.examples("test", data_dir=tmp_path)
    assert example.source == "paws sentence1: The glass barn 7 is blue. sentence2: The barn 7 is coloured."
    assert example.target == "paraphrase"


def test_ag_news_labels_follow_hub_order(tmp_path, small_dev):
    train = [text_row(i, i % 4) for i in range(4)]
    write_splits(tmp_path / "AGNews", {"train": train, "test": [text_row(i, i) for i in range(4)]})
    task = OTHER_TASKS["ag_news"]
    assert sizes(task, tmp_path) == {"train": 3, "validation": 1, "test": 4}
    assert [e.target for e in task.examples("test", data_dir=tmp_path)] == ["world", "sports", "business", "science"]
    assert task.examples("test", data_dir=tmp_path)[0].source == "ag_news sentence: Invented review number 0."


def test_commonsense_qa_target_is_the_choice_text(tmp_path, small_dev):
    labels = ("A", "B", "C", "D", "E")
    write_splits(
        tmp_path / "CommonsenseQA",
        {"train": [mc(i, "A", labels) for i in range(3)], "validation": [mc(20, "D", labels), mc(21, "", labels)]},
    )
    task = OTHER_TASKS["commonsense_qa"]
    assert sizes(task, tmp_path) == {"train": 2, "validation": 1, "test": 1}  # the unlabelled row is skipped
    (example,) = task.examples("test", data_dir=tmp_path)
    assert example.source == (
        "commonsense_qa question: Which thing 20 floats? "
        "choices: option a20 | option b20 | option c20 | option d20 | option e20"
    )
    assert example.target == "option d20"
    assert example.candidates == ("option a20", "option b20", "option c20", "option d20", "option e20")


def test_openbookqa_reads_question_stem(tmp_path):
    rows = [mc(i, "C", ("A", "B", "C", "D"), "question_stem") for i in range(3)]
    write_splits(tmp_path / "OpenBookQA", {"train": rows, "validation": rows[:2], "test": rows[:1]})
    task = OTHER_TASKS["openbookqa"]
    assert sizes(task, tmp_path) == {"train": 3, "validation": 2, "test": 1}
    (example,) = task.examples("test", data_dir=tmp_path)
    assert example.source == "openbookqa question: Which thing 0 floats? choices: option a0 | option b0 | option c0 | option d0"
    assert example.target == "option c0"


def test_arc_maps_digit_answer_keys_through_the_choice_labels(tmp_path):
    rows = [mc(0, "3", ("1", "2", "3", "4")), mc(1, "B", ("A", "B", "C", "D")), mc(2, "1", ("1", "2", "3"))]
    write_splits(tmp_path / "ARC", {"train": rows, "validation": rows, "test": rows})
    examples = OTHER_TASKS["arc"].examples("test", data_dir=tmp_path)
    assert [e.target for e in examples] == ["option 30", "option b1", "option 12"]
    assert examples[2].candidates == ("option 12", "option 22", "option 32")


def test_anli_joins_the_three_rounds(tmp_path):
    folder = tmp_path / "others" / "ANLI"
    counts = {"train": (3, 2, 1), "dev": (1, 1, 2), "test": (2, 1, 1)}
    for split, per_round in counts.items():
        for r, count in enumerate(per_round, start=1):
            rows = [pair(100 * r + i, (r + i) % 3, ("premise", "hypothesis")) for i in range(count)]
            write_jsonl(folder / f"{split}_r{r}.jsonl", rows)
    task = OTHER_TASKS["anli"]
    assert sizes(task, tmp_path) == {"train": 6, "validation": 4, "test": 4}
    train = task.examples("train", data_dir=tmp_path)
    assert [e.source.split()[5] for e in train] == ["100", "101", "102", "200", "201", "300"]  # r1, r2, r3 in order
    assert train[0].source == "anli premise: The glass barn 100 is blue. hypothesis: The barn 100 is coloured."
    assert train[0].target == "neutral"


def test_fields_json_renames_keys_for_other_tasks(tmp_path):
    folder = tmp_path / "PAWS"
    rows = [{"a": "First invented line.", "b": "Second invented line.", "y": 0}]
    write_splits(folder, {"train": rows, "validation": rows, "test": rows})
    (folder / "fields.json").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "label": "y"}), encoding="utf-8")
    (example,) = OTHER_TASKS["paws"].examples("test", data_dir=tmp_path)
    assert example.source == "paws sentence1: First invented line. sentence2: Second invented line."
    assert example.target == "not_paraphrase"


@pytest.mark.parametrize(
    ("name", "folder", "row", "message"),
    [
        ("paws", "PAWS", pair(1, 2), "unknown label 2 (expected one of 0, 1)"),
        ("scitail", "scitail", pair(1, "contradiction", label_key="gold_label"),
         "unknown label 'contradiction' (expected one of 'entailment', 'neutral')"),
        ("paws", "paws", {"sentence1": "x", "label": 1}, "missing field 'sentence2'"),
        ("paws", "paws", {"sentence1": "x", "sentence2": 5, "label": 1}, "field 'sentence2' must be a non-empty string"),
        ("arc", "ARC", mc(1, "E"), "answerKey 'E' is not one of the choice labels A, B, C"),
        ("arc", "ARC", {**mc(1), "choices": {"label": ["A", "B"], "text": ["x"]}}, "field 'choices' must be"),
        ("arc", "ARC", {**mc(1), "choices": ["x", "y"]}, "field 'choices' must be"),
        ("arc", "ARC", {"choices": mc(1)["choices"], "answerKey": "A"}, "missing field 'question'"),
        ("winogrande", "WinoGrande", {**wino(1), "option2": ""}, "field 'option2' must be a non-empty string"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, name, folder, row, message):
    good = {"paws": pair(0, 0), "scitail": pair(0, "neutral", label_key="gold_label"), "arc": mc(0), "winogrande": wino(0)}[name]
    path = write_jsonl(tmp_path / folder / "test.jsonl", [good, row])
    write_jsonl(tmp_path / folder / "validation.jsonl", [good, row])
    with pytest.raises(BmtptError) as caught:
        OTHER_TASKS[name].examples("test", data_dir=tmp_path)
    text = str(caught.value)
    assert text.startswith(f"'{path.parent}") and f".jsonl' line 2: {message}" in text
    assert "\n" not in text


def test_missing_split_file_and_missing_folder_are_named(tmp_path):
    write_splits(tmp_path / "PAWS", {"train": [pair(0, 0)], "validation": [pair(1, 1)]})
    with pytest.raises(BmtptError, match=r"task paws needs test\.jsonl in '.*PAWS' for its test split"):
        OTHER_TASKS["paws"].examples("test", data_dir=tmp_path)
    write_jsonl(tmp_path / "ANLI" / "train_r1.jsonl", [pair(0, 0, ("premise", "hypothesis"))])
    with pytest.raises(BmtptError, match=r"task anli needs train_r2\.jsonl in"):
        OTHER_TASKS["anli"].examples("train", data_dir=tmp_path)
    with pytest.raises(BmtptError, match=f"no files for task openbookqa under --data-dir '{tmp_path}'"):
        OTHER_TASKS["openbookqa"].examples("test", data_dir=tmp_path)


def test_hub_rows_use_the_same_normalisers_and_name_the_row():
    where = "allenai/winogrande (winogrande_xl) train"
    assert winogrande(wino(0, "2"), where, 4)["label"] == "Dorn"
    with pytest.raises(BmtptError, match=r"^allenai/winogrande \(winogrande_xl\) train row 4: unknown label '7'"):
        winogrande(wino(0, "7"), where, 4)
    normalise = classification({"premise": "premise", "hypothesis": "hypothesis"}, "label", {0: 0, 1: 1, 2: 2})
    assert normalise({"premise": "p", "hypothesis": "h", "label": -1}, "facebook/anli test_r1", 0) is None
    assert normalise({"premise": "p", "hypothesis": "h", "label": 2}, "facebook/anli test_r1", 0) == {
        "premise": "p", "hypothesis": "h", "label": 2,
    }
    with pytest.raises(BmtptError, match=r"^tau/commonsense_qa validation row 12: missing field 'answerKey'$"):
        multiple_choice("question")({"question": "q", "choices": {}}, "tau/commonsense_qa validation", 12)
