"""GLUE loaders on small files written here in the GLUE distribution's formats, and the split protocol."""

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bmtpt_cli.data import splits
from bmtpt_cli.data.glue import GLUE_TASKS, STSB_GRID, float32_text, stsb_target
from bmtpt_cli.errors import BmtptError

HEADERS = {
    "RTE": "index\tsentence1\tsentence2\tlabel",
    "QNLI": "index\tquestion\tsentence\tlabel",
    "MRPC": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
    "SST-2": "sentence\tlabel",
    "QQP": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
    "STS-B": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
    "MNLI": "index\tpromptID\tpairID\tgenre\ts1_bp\ts2_bp\ts1_p\ts2_p\tsentence1\tsentence2\tlabel1\tgold_label",
}


def _row(folder: str, i: int) -> str:
    """One invented row in the folder's column layout (label cycles through the task's values)."""
    if folder == "RTE":
        return f'{i}\tThe "quoted fox {i} ran.\tA fox {i} moved.\t{["entailment", "not_entailment"][i % 2]}'
    if folder == "QNLI":
        return f"{i}\tWhere is box {i}?\tBox {i} is here.\t{['entailment', 'not_entailment'][i % 2]}"
    if folder == "MRPC":
        return f"{i % 2}\t{i}\t{i + 1}\tThe cat {i} sat.\tA cat {i} was sitting."
    if folder == "SST-2":
        return f"a film numbered {i} \t{i % 2}"
    if folder == "QQP":
        return f"{i}\t{2 * i}\t{2 * i + 1}\tHow do I cook {i}?\tWhat is cooking {i}?\t{i % 2}"
    if folder == "STS-B":
        return f"{i}\tmain-news\tf\t2012\t{i}\tnone\tnone\tA man plays {i}.\tA person plays {i}.\t{(i % 11) * 0.47:.3f}"
    if folder == "MNLI":
        return f"{i}\t1\t1p\tfiction\tx\tx\tx\tx\tPremise {i}.\tHypothesis {i}.\tneutral\t{['entailment', 'neutral', 'contradiction'][i % 3]}"
    raise AssertionError(folder)


def write_glue(root: Path, folder: str, sizes: dict[str, int]) -> Path:
    directory = root / "glue" / folder
    directory.mkdir(parents=True, exist_ok=True)
    for filename, size in sizes.items():
        lines = [HEADERS[folder]] + [_row(folder, i) for i in range(size)]
        (directory / filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def write_cola(root: Path, sizes: dict[str, int]) -> None:
    directory = root / "CoLA"  # directly under the data dir: also accepted
    directory.mkdir(parents=True)
    for filename, size in sizes.items():
        rows = [f"src{i}\t{i % 2}\t{'*' if i % 2 == 0 else ''}\tSentence number {i} here." for i in range(size)]
        (directory / filename).write_text("\n".join(rows), encoding="utf-8")  # no header, no final newline


@pytest.mark.parametrize("folder,task", [("RTE", "rte"), ("MRPC", "mrpc"), ("STS-B", "stsb")])
def test_small_task_split_sizes(tmp_path, folder, task):
    write_glue(tmp_path, folder, {"train.tsv": 12, "dev.tsv": 9})
    sizes = {s: len(GLUE_TASKS[task].examples(s, data_dir=tmp_path)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 12, "validation": 4, "test": 5}  # S: validation halved (4 + 5)


@pytest.mark.parametrize("folder,task", [("QNLI", "qnli"), ("SST-2", "sst2"), ("QQP", "qqp")])
def test_large_task_split_sizes(tmp_path, folder, task, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 5)
    write_glue(tmp_path, folder, {"train.tsv": 20, "dev.tsv": 7})
    sizes = {s: len(GLUE_TASKS[task].examples(s, data_dir=tmp_path)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 15, "validation": 5, "test": 7}  # L: 5 of train as dev, dev.tsv as test


def test_mnli_uses_its_own_matched_and_mismatched_files(tmp_path):
    write_glue(tmp_path, "MNLI", {"train.tsv": 6, "dev_matched.tsv": 4, "dev_mismatched.tsv": 3})
    task = GLUE_TASKS["mnli"]
    assert [len(task.examples(s, data_dir=tmp_path)) for s in ("train", "validation", "test")] == [6, 3, 4]


EXPECTED = {  # one hand-written example per task: (task, folder, expected source, expected target)
    "rte": ('rte sentence1: The "quoted fox 0 ran. sentence2: A fox 0 moved.', "entailment"),
    "qnli": ("qnli question: Where is box 1? sentence: Box 1 is here.", "not_entailment"),
    "mrpc": ("mrpc sentence1: The cat 1 sat. sentence2: A cat 1 was sitting.", "equivalent"),
    "sst2": ("sst2 sentence: a film numbered 0 ", "negative"),
    "qqp": ("qqp question1: How do I cook 1? question2: What is cooking 1?", "duplicate"),
    "stsb": ("stsb sentence1: A man plays 3. sentence2: A person plays 3.", "1.4"),  # 1.41 → 1.4 on the 0.2 grid
    "mnli": ("mnli premise: Premise 2. hypothesis: Hypothesis 2.", "contradiction"),
}
FOLDERS = {"rte": "RTE", "qnli": "QNLI", "mrpc": "MRPC", "sst2": "SST-2", "qqp": "QQP", "stsb": "STS-B", "mnli": "MNLI"}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_formatting_of_one_example_per_task(tmp_path, task, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 0)  # keep every training row in train
    files = {"train.tsv": 5, "dev_matched.tsv": 2, "dev_mismatched.tsv": 2} if task == "mnli" else {"train.tsv": 5, "dev.tsv": 2}
    write_glue(tmp_path, FOLDERS[task], files)
    source, target = EXPECTED[task]
    targets = {e.source: e.target for e in GLUE_TASKS[task].examples("train", data_dir=tmp_path)}
    assert targets.get(source) == target, sorted(targets)


def test_cola_without_header_and_digit_labels(tmp_path):
    write_cola(tmp_path, {"train.tsv": 4, "dev.tsv": 4})
    task = GLUE_TASKS["cola"]
    words = task.examples("train", data_dir=tmp_path)
    digits = task.examples("train", data_dir=tmp_path, label_style="digits", taskless=True)
    assert (words[1].source, words[1].target) == ("cola sentence: Sentence number 1 here.", "acceptable")
    assert (digits[1].source, digits[1].target) == ("sentence: Sentence number 1 here.", "1")
    assert task.verbalisers("digits") == ("0", "1") and task.metrics == ("mcc", "accuracy")


def test_stsb_rounds_to_the_point_two_grid():
    assert [stsb_target(x) for x in (0.0, 0.09, 0.11, 2.5, 2.49, 2.51, 3.3, 4.95, "5.000")] == [
        "0.0", "0.0", "0.2", "2.4", "2.4", "2.6", "3.2", "5.0", "5.0",
    ]
    assert len(STSB_GRID) == 26 and STSB_GRID[1] == "0.2"


def t5_stsb_target(score: str) -> str:
    """T5's STS-B target, `tf.round(score * 5) / 5` (half to even) as text with one decimal,
    computed here exactly: the TSV score is a decimal string, so ties are decided in decimal."""
    return f"{round(Fraction(score) * 5) / 5:.1f}"  # round() on a Fraction: exact, half to even


STSB_TIES = [f"{k / 10:.1f}" for k in range(1, 50, 2)] + ["0.100", "2.5000", "4.900"]  # score*5 = n + 0.5


def test_stsb_ties_round_half_to_even_like_t5():
    assert [stsb_target(x) for x in ("0.1", "0.3", "0.5", "0.7", "0.9", "2.5", "3.3", "4.9")] == [
        "0.0", "0.4", "0.4", "0.8", "0.8", "2.4", "3.2", "4.8",
    ]
    assert [stsb_target(x) for x in STSB_TIES] == [t5_stsb_target(x) for x in STSB_TIES]
    assert [stsb_target(float(x)) for x in STSB_TIES] == [t5_stsb_target(x) for x in STSB_TIES]  # floats too
    near = ["0.0999", "0.1001", "2.4999", "2.5001", "0.30000001"]  # not ties: the nearest grid point
    assert [stsb_target(x) for x in near] == ["0.0", "0.2", "2.4", "2.6", "0.4"]


def test_protocol_split_is_deterministic_and_disjoint(tmp_path):
    write_glue(tmp_path, "RTE", {"train.tsv": 4, "dev.tsv": 40})
    task = GLUE_TASKS["rte"]
    dev = [e.source for e in task.examples("validation", data_dir=tmp_path)]
    test = [e.source for e in task.examples("test", data_dir=tmp_path)]
    assert not set(dev) & set(test) and len(dev) + len(test) == 40
    assert dev != sorted(dev, key=lambda s: int(s.split("fox ")[1].split()[0]))  # shuffled, not file order
    assert splits.shuffled(list(range(10))) == splits.shuffled(list(range(10)))  # seed 42 every time
    assert splits.shuffled(list(range(10))) == [dict(enumerate(range(10)))[i] for i in splits.shuffled(list(range(10)))]


@pytest.mark.parametrize(
    "setup,words",
    [
        (lambda root: write_glue(root, "RTE", {"train.tsv": 2}), ["dev.tsv"]),  # missing dev file
        (lambda root: (root / "glue").mkdir(), ["no files for task rte"]),  # no task folder
        (lambda root: (write_glue(root, "RTE", {"dev.tsv": 2}) / "train.tsv").write_text(HEADERS["RTE"] + "\n1\ta\tb\tmaybe\n"), ["line 2", "'maybe'"]),
        (lambda root: (write_glue(root, "RTE", {"dev.tsv": 2}) / "train.tsv").write_text(HEADERS["RTE"] + "\n1\ta\tb\n"), ["line 2", "3 fields"]),
        (lambda root: (write_glue(root, "RTE", {"dev.tsv": 2}) / "train.tsv").write_text("index\tsentence1\tlabel\n1\ta\tentailment\n"), ["line 2", "sentence2"]),
    ],
    ids=["missing-file", "missing-folder", "unknown-label", "short-row", "missing-column"],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, setup, words):
    setup(tmp_path)
    task = GLUE_TASKS["rte"]
    with pytest.raises(BmtptError) as excinfo:
        task.examples("train", data_dir=tmp_path)
        task.examples("test", data_dir=tmp_path)
    message = str(excinfo.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_hub_rows_normalise_like_the_files():
    from bmtpt_cli.data.glue import _hub_normaliser

    rte = _hub_normaliser({"sentence1": "sentence1", "sentence2": "sentence2"})
    assert rte({"sentence1": "A", "sentence2": "B", "label": 1, "idx": 0}, "hub", 0) == {"sentence1": "A", "sentence2": "B", "label": 1}
    assert rte({"sentence1": "A", "sentence2": "B", "label": -1, "idx": 0}, "hub", 0) is None  # unlabelled test row
    stsb = _hub_normaliser({"sentence1": "sentence1", "sentence2": "sentence2"}, regression=True)
    assert stsb({"sentence1": "A", "sentence2": "B", "label": 3.3}, "hub", 0)["label"] == "3.2"  # a tie: half to even
    # the hub's scores are float32 (3.1 arrives as 3.0999999046...): ties still round as in the files
    for text in STSB_TIES:
        label = float(np.float32(text))
        assert stsb({"sentence1": "A", "sentence2": "B", "label": label}, "hub", 0)["label"] == t5_stsb_target(text)


# --- the real STS-B files in shared/data, read in place --------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
STSB_FILES = SHARED_DATA / "glue" / "STS-B"
# (file, rows, targets that differ from the old half-up rule): the ties score*5 = n + 0.5 with n odd
STSB_CHANGES = [("train.tsv", 5749, 91), ("dev.tsv", 1500, 24)]


def _raw_stsb_scores(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        head, *rows = [line.rstrip("\r\n").split("\t") for line in handle if line.strip()]
    return [row[head.index("score")] for row in rows]


@pytest.mark.skipif(not STSB_FILES.is_dir(), reason="shared/data/glue/STS-B is absent")
@pytest.mark.parametrize("filename,rows,changed", STSB_CHANGES)
def test_shared_data_stsb_targets_follow_t5_rounding(filename, rows, changed):
    scores = _raw_stsb_scores(STSB_FILES / filename)
    assert len(scores) == rows
    expected = [t5_stsb_target(s) for s in scores]
    assert [stsb_target(s) for s in scores] == expected
    # T5 computes in float32 (TFDS's score dtype): tf.round(float32(score) * 5) half to even, the same here
    assert [f"{np.round(np.float32(s) * np.float32(5)) / np.float32(5):.1f}" for s in scores] == expected
    assert [stsb_target(float32_text(float(np.float32(s)))) for s in scores] == expected  # a hub float32 score
    half_up = [f"{(Decimal(s) * 5).quantize(Decimal(1), rounding=ROUND_HALF_UP) / 5:.1f}" for s in scores]
    assert sum(a != b for a, b in zip(expected, half_up)) == changed
    task = GLUE_TASKS["stsb"]
    if filename == "train.tsv":  # rule S: train is the official train, in file order
        assert [e.target for e in task.examples("train", data_dir=SHARED_DATA)] == expected
    else:  # the official validation, halved into dev and test: the same targets as a multiset
        targets = [e.target for split in ("validation", "test") for e in task.examples(split, data_dir=SHARED_DATA)]
        assert sorted(targets) == sorted(expected)
