"""`bmtpt tasks --layout TASK` (issue 26, Small): the folder and files --data-dir must hold for a task,
taken from the task's own reader, so files laid out as it says load."""

from __future__ import annotations

import json

from bmtpt_cli.data.registry import get_task
from clihelpers import bmtpt

RTE_HEADER = "index\tsentence1\tsentence2\tlabel"
RTE_ROWS = [f"{i}\tThe fox {i} ran.\tA fox {i} moved.\t{['entailment', 'not_entailment'][i % 2]}" for i in range(8)]


def _layout(task: str) -> dict:
    result = bmtpt("tasks", "--layout", task, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_layout_names_the_folder_and_each_splits_file():
    result = bmtpt("tasks", "--layout", "rte")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "DIR/RTE/" in text and "DIR/glue/RTE/" in text
    assert "train.tsv: the official train split → train" in text
    assert "dev.tsv: the official validation split → validation and test" in text


def test_files_laid_out_as_the_layout_says_load(tmp_path):
    """Every split of RTE (GLUE TSV) and BoolQ (SuperGLUE JSONL) reads from the files --layout names."""
    rte = _layout("rte")
    folder = tmp_path / rte["folders"][0]
    folder.mkdir()
    for names in rte["files"].values():
        (folder / names[0]).write_text("\n".join([RTE_HEADER, *RTE_ROWS]) + "\n", encoding="utf-8")
    boolq = _layout("boolq")
    folder = tmp_path / boolq["family"] / boolq["folders"][0]  # the family subfolder works too
    folder.mkdir(parents=True)
    rows = [{"question": f"is lantern {i} lit", "passage": f"Lantern {i} hangs.", "idx": i, "label": i % 2 == 0} for i in range(6)]
    for names in boolq["files"].values():
        (folder / names[0]).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    for name in ("rte", "boolq"):
        sizes = [len(get_task(name).examples(split, data_dir=tmp_path)) for split in ("train", "validation", "test")]
        assert all(sizes), (name, sizes)


def test_layout_of_a_squad_lists_every_accepted_name():
    files = _layout("squad")["files"]
    assert files["train"] == ["train-v1.1.json", "train.jsonl"]
    assert files["validation"][:2] == ["dev-v1.1.json", "dev-v1.1.part*.json"] and "dev.jsonl" in files["validation"]


def test_generated_and_unknown_tasks_are_refused_in_one_line():
    for task, words in (("demo_rte", "reads no files"), ("rtee", "did you mean rte")):
        result = bmtpt("tasks", "--layout", task)
        assert result.exit_code == 2 and words in result.stderr and "\n" not in result.stderr.strip()
