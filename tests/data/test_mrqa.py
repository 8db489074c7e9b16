"""The MRQA tasks: SQuAD JSON (whole and in parts), the generic JSONL layout, fields.json, errors.

Every file here is written into tmp_path with invented text; the shared SQuAD dev set is read in
place by one integration test (skipped where it is absent).
"""

import json
from pathlib import Path

import pytest

from bmtpt_cli.data import benchmark, splits
from bmtpt_cli.data.mrqa import MRQA_TASKS, mrqa_hub, qa_record
from bmtpt_cli.data.sources import jsonl_reader, row_parser
from bmtpt_cli.errors import BmtptError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
NAMES = ["squad", "nq", "hotpotqa", "newsqa", "searchqa"]
FOLDERS = {"squad": "SQuAD", "nq": "NaturalQuestions", "hotpotqa": "HotpotQA", "newsqa": "NewsQA", "searchqa": "SearchQA"}


@pytest.fixture
def small_dev(monkeypatch):
    """Rule L takes 2 training questions as dev instead of 1,000, so tiny files suffice."""
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 2)


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def qa_rows(prefix: str, count: int) -> list[dict]:
    """Invented QA rows: question i about a made-up place, one answer each."""
    return [
        {"question": f"{prefix} question {i}?", "context": f"The town of Zorvik{i} has {i} bridges.", "answers": [f"{i} bridges"]}
        for i in range(count)
    ]


def squad_json(articles: list[list[tuple[str, str, list[str]]]]) -> dict:
    """A SQuAD v1.1 document: one paragraph per article, each (id, question, answers) in it."""
    return {
        "version": "1.1",
        "data": [
            {
                "title": f"Article_{a}",
                "paragraphs": [
                    {
                        "context": f"Invented paragraph {a} about the lighthouse of Quellmoor.",
                        "qas": [
                            {"id": qid, "question": q, "answers": [{"text": t, "answer_start": 0} for t in answers]}
                            for qid, q, answers in questions
                        ],
                    }
                ],
            }
            for a, questions in enumerate(articles)
        ],
    }


def write_json(path: Path, document) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_five_tasks_are_extractive_qa_scored_by_f1_first():
    assert sorted(MRQA_TASKS) == sorted(NAMES)
    for name, task in MRQA_TASKS.items():
        assert task.name == name and task.benchmark == "mrqa"
        assert task.input_fields == ("question", "context")
        assert task.label_words is None
        assert task.metrics == ("squad_f1", "squad_em") and task.metric == "squad_f1"
        assert task.source == "mrqa-workshop/mrqa (plain_text)"
        assert task.split_rule.startswith("L")


@pytest.mark.parametrize("name", NAMES)
def test_generic_jsonl_split_sizes_and_format(name, tmp_path, small_dev):
    folder = tmp_path / "mrqa" / FOLDERS[name]
    write_jsonl(folder / "train.jsonl", qa_rows("train", 7))
    write_jsonl(
        folder / "validation.jsonl",
        [
            {"question": "Who keeps the bells of Ombreth?", "context": "Mira Tolk keeps the bells.",
             "answers": ["Mira Tolk", "Tolk", "Mira Tolk"]},
            *qa_rows("validation", 2),
        ],
    )
    task = MRQA_TASKS[name]
    sizes = {split: len(task.examples(split, data_dir=tmp_path)) for split in ("train", "validation", "test")}
    assert sizes == {"train": 5, "validation": 2, "test": 3}
    first = task.examples("test", data_dir=tmp_path)[0]
    assert first.source == f"{name} question: Who keeps the bells of Ombreth? context: Mira Tolk keeps the bells."
    assert first.target == "Mira Tolk"
    assert first.answers == ("Mira Tolk", "Tolk")  # distinct, order kept
    assert first.label is None and first.candidates == ()
    assert task.examples("test", taskless=True, data_dir=tmp_path)[0].source.startswith("question: Who keeps")


def test_training_question_with_several_answers_is_one_example_per_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", 0)  # every training question stays in train, whatever the permutation
    folder = tmp_path / "NewsQA"
    rows = [{"question": "What colour is the kite?", "context": "A red kite, crimson really.", "answers": ["red", "crimson"]}]
    write_jsonl(folder / "train.jsonl", qa_rows("train", 2) + rows)
    write_jsonl(folder / "dev.jsonl", qa_rows("validation", 1))  # dev.jsonl is accepted for validation
    train = MRQA_TASKS["newsqa"].examples("train", data_dir=tmp_path)
    assert sorted(e.target for e in train if e.source.startswith("newsqa question: What colour")) == ["crimson", "red"]
    assert len(MRQA_TASKS["newsqa"].examples("test", data_dir=tmp_path)) == 1


def test_fields_json_maps_task_keys_to_other_file_keys(tmp_path, small_dev):
    folder = tmp_path / "HotpotQA"
    rows = [{"q": f"Which hill is number {i}?", "passage": f"Hill {i} is Brannock.", "gold": [f"Brannock {i}"]} for i in range(4)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows[:1])
    write_json(folder / "fields.json", {"question": "q", "context": "passage", "answers": "gold"})
    example = MRQA_TASKS["hotpotqa"].examples("test", data_dir=tmp_path)[0]
    assert example.source == "hotpotqa question: Which hill is number 0? context: Hill 0 is Brannock."
    assert example.answers == ("Brannock 0",)


def test_fields_json_errors_name_the_file(tmp_path):
    folder = tmp_path / "SearchQA"
    write_jsonl(folder / "validation.jsonl", [{"question": "q?", "passage": "c.", "answers": ["a"]}] * 2)
    write_json(folder / "fields.json", {"contxt": "passage"})
    with pytest.raises(BmtptError, match=r"fields\.json': unknown field\(s\) contxt; this task reads question, context, answers"):
        MRQA_TASKS["searchqa"].examples("test", data_dir=tmp_path)
    write_json(folder / "fields.json", {"context": "text"})
    with pytest.raises(BmtptError, match=r"validation\.jsonl' line 1: missing field 'text' \(fields\.json reads 'context'"):
        MRQA_TASKS["searchqa"].examples("test", data_dir=tmp_path)


def test_squad_json_train_and_dev(tmp_path, small_dev):
    folder = tmp_path / "mrqa" / "squad"
    train = [[(f"t{a}{k}", f"Invented question {a}.{k}?", ["the lighthouse"]) for k in range(2)] for a in range(3)]
    write_json(folder / "train-v1.1.json", squad_json(train))
    dev = [[("d0", "Where is Quellmoor?", ["the north coast", "north coast", "the north coast"])]]
    write_json(folder / "dev-v1.1.json", squad_json(dev))
    task = MRQA_TASKS["squad"]
    assert [len(task.load_records(s, tmp_path)) for s in ("train", "validation", "test")] == [4, 2, 1]
    (example,) = task.examples("test", data_dir=tmp_path)
    assert example.source == (
        "squad question: Where is Quellmoor? context: Invented paragraph 0 about the lighthouse of Quellmoor."
    )
    assert example.target == "the north coast"
    assert example.answers == ("the north coast", "north coast")


def test_squad_dev_in_parts_is_concatenated_in_name_order(tmp_path):
    folder = tmp_path / "SQuAD"
    for part, ids in ((2, ["b1", "b2"]), (10, ["c1"]), (1, ["a1", "a2", "a3"])):
        write_json(folder / f"dev-v1.1.part{part}.json", squad_json([[(i, f"Question {i}?", [f"answer {i}"]) for i in ids]]))
    test = MRQA_TASKS["squad"].examples("test", data_dir=tmp_path)
    assert [e.target for e in test] == ["answer a1", "answer a2", "answer a3", "answer b1", "answer b2", "answer c1"]


def test_squad_falls_back_to_generic_jsonl(tmp_path, small_dev):
    folder = tmp_path / "squad"
    write_jsonl(folder / "train.jsonl", qa_rows("train", 3))
    write_jsonl(folder / "validation.jsonl", qa_rows("validation", 2))
    task = MRQA_TASKS["squad"]
    assert [len(task.examples(s, data_dir=tmp_path)) for s in ("train", "validation", "test")] == [1, 2, 2]
    assert task.examples("test", data_dir=tmp_path)[1].target == "1 bridges"


def test_squad_json_wins_over_jsonl_in_the_same_folder(tmp_path):
    folder = tmp_path / "SQuAD"
    write_jsonl(folder / "validation.jsonl", qa_rows("validation", 2))
    write_json(folder / "dev-v1.1.json", squad_json([[("x", "Which file?", ["the JSON one"])]]))
    assert [e.target for e in MRQA_TASKS["squad"].examples("test", data_dir=tmp_path)] == ["the JSON one"]


def test_missing_squad_file_names_every_accepted_name(tmp_path):
    write_json(tmp_path / "SQuAD" / "dev-v1.1.json", squad_json([[("x", "q?", ["a"])]]))
    with pytest.raises(BmtptError) as caught:
        MRQA_TASKS["squad"].examples("train", data_dir=tmp_path)
    message = str(caught.value)
    folder = tmp_path / "SQuAD"
    assert message == f"task squad needs train-v1.1.json or train.jsonl in '{folder}' for its train split: add the file"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q?", "context": "c."}, "line 2: missing field 'answers'"),
        ({"question": "q?", "context": "c.", "answers": []}, "line 2: the question has no non-empty gold answer"),
        ({"question": "q?", "context": "c.", "answers": ["  "]}, "line 2: the question has no non-empty gold answer"),
        ({"question": "q?", "context": "c.", "answers": [3]}, "line 2: field 'answers' must be a list of strings"),
        ({"question": "", "context": "c.", "answers": ["a"]}, "line 2: field 'question' must be a non-empty string"),
        ({"question": "q?", "answers": ["a"]}, "line 2: missing field 'context'"),
        (["q?", "c.", ["a"]], "line 2: expected a JSON object, got list"),
    ],
)
def test_bad_jsonl_rows_name_the_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "NQ" / "validation.jsonl", [qa_rows("v", 1)[0], row])
    with pytest.raises(BmtptError) as caught:
        MRQA_TASKS["nq"].examples("test", data_dir=tmp_path)
    assert str(caught.value).startswith(f"'{path}' {message}")
    assert "\n" not in str(caught.value)


def test_invalid_json_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "NewsQA" / "validation.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(qa_rows("v", 1)[0]) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(BmtptError, match=f"^'{path}' line 3: not valid JSON"):
        MRQA_TASKS["newsqa"].examples("test", data_dir=tmp_path)


def test_bad_squad_json_names_the_file_and_question(tmp_path):
    document = squad_json([[("ok", "Fine?", ["yes"])], [("q7", "Broken?", ["yes"])]])
    del document["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["text"]
    path = write_json(tmp_path / "SQuAD" / "dev-v1.1.json", document)
    with pytest.raises(BmtptError, match=f"^'{path}' article 1 paragraph 0 question 0 \\(id q7\\): missing field 'text'$"):
        MRQA_TASKS["squad"].examples("test", data_dir=tmp_path)
    write_json(path, {"version": "1.1", "articles": []})
    with pytest.raises(BmtptError, match=f"^'{path}' top level: expected a list under 'data'"):
        MRQA_TASKS["squad"].examples("test", data_dir=tmp_path)


def test_data_dir_without_the_task_folder_is_a_clear_error(tmp_path):
    (tmp_path / "SQuAD").mkdir()
    with pytest.raises(BmtptError, match=f"no files for task hotpotqa under --data-dir '{tmp_path}'"):
        MRQA_TASKS["hotpotqa"].examples("test", data_dir=tmp_path)


def test_missing_split_file_is_named(tmp_path):
    write_jsonl(tmp_path / "SearchQA" / "train.jsonl", qa_rows("t", 3))
    with pytest.raises(BmtptError, match="task searchqa needs validation.jsonl or dev.jsonl in .* for its validation split"):
        MRQA_TASKS["searchqa"].examples("test", data_dir=tmp_path)


def test_hub_rows_are_filtered_by_subset_and_normalised(monkeypatch):
    rows = [
        {"subset": "SQuAD", "context": "c0", "qid": "0", "question": "q0?", "answers": ["a0"]},
        {"subset": "NewsQA", "context": "c1", "qid": "1", "question": "q1?", "answers": ["a1", "b1", "a1"]},
        {"subset": "NewsQA", "context": "c2", "qid": "2", "question": "q2?", "answers": ["a2"]},
    ]
    calls = []

    def fake_load(repo, config, split, revision=None, keep=None):
        calls.append((repo, config, split))
        return [row for row in rows if keep is None or keep(row)]  # as `datasets.Dataset.filter` does

    monkeypatch.setattr(benchmark, "load_hub_split", fake_load)
    records = mrqa_hub("NewsQA").load("validation")
    assert calls == [("mrqa-workshop/mrqa", "plain_text", "validation")]
    assert records == [
        {"question": "q1?", "context": "c1", "label": "a1", "answers": ("a1", "b1")},
        {"question": "q2?", "context": "c2", "label": "a2", "answers": ("a2",)},
    ]
    rows.append({"subset": "NewsQA", "context": "c3", "qid": "3", "question": "q3?", "answers": []})
    with pytest.raises(BmtptError, match=r"^mrqa-workshop/mrqa \(plain_text\) train row 2: the question has no"):
        mrqa_hub("NewsQA").load("train")


def test_generic_reader_skips_rows_the_normaliser_drops(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"keep": True}, {"keep": False}, {"keep": True}])
    read = jsonl_reader(row_parser(lambda row, where, line: {"line": line, "where": where} if row["keep"] else None), keys=("keep",))
    assert read(tmp_path, "train", "demo") == [{"line": 1, "where": path}, {"line": 3, "where": path}]


def test_qa_record_accepts_a_single_answer_string():
    assert qa_record({"question": "q?", "context": "c", "answers": " a "}, "hub", 0)["answers"] == ("a",)


@pytest.mark.skipif(not (SHARED_DATA / "squad").is_dir(), reason="shared SQuAD dev data not present")
def test_shared_squad_dev_parts_load_in_place():
    task = MRQA_TASKS["squad"]
    test = task.examples("test", data_dir=SHARED_DATA)
    assert len(test) == 10570
    assert all(e.answers and e.target == e.answers[0] and e.source.startswith("squad question: ") for e in test)
    assert len({e.source for e in test}) > 10000
    with pytest.raises(BmtptError) as caught:
        task.examples("train", data_dir=SHARED_DATA)
    assert "train-v1.1.json" in str(caught.value) and str(SHARED_DATA / "squad") in str(caught.value)
    with pytest.raises(BmtptError, match="train-v1.1.json"):
        task.examples("validation", data_dir=SHARED_DATA)
