"""`bmtpt tasks`: the registry as a table or JSON."""

import json

from bmtpt_cli.data.registry import TASKS
from clihelpers import bmtpt


def test_json_lists_every_registered_task_with_its_metadata():
    result = bmtpt("tasks", "--format", "json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(TASKS)
    assert rows["rte"]["metrics"] == ["accuracy"] and rows["rte"]["split"] == "S"
    assert rows["rte"]["labels"] == ["entailment", "not_entailment"] and rows["rte"]["source"] == "nyu-mll/glue (rte)"
    assert rows["mrpc"]["metrics"] == ["f1", "accuracy"] and rows["stsb"]["labels"] is None
    assert rows["mnli"]["split"].startswith("O:")


def test_table_and_benchmark_filter():
    result = bmtpt("tasks", "--benchmark", "glue")
    assert result.exit_code == 0
    assert "mrpc" in result.stdout and "demo_rte" not in result.stdout


def test_bad_format_or_benchmark_is_a_one_line_error():
    for args, word in ((["--format", "yaml"], "--format"), (["--benchmark", "nope"], "--benchmark")):
        result = bmtpt("tasks", *args)
        assert result.exit_code == 2 and word in result.stderr and len(result.stderr.strip().splitlines()) == 1
