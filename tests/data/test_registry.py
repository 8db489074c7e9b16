"""The task registry: lookup, parsing of name lists, and the one-line errors."""

import subprocess
import sys

import pytest

from bmtpt_cli.data.demo import DEMO_TASKS
from bmtpt_cli.data.registry import BENCHMARK_TASKS, TASKS, available_tasks, get_task, resolve_tasks
from bmtpt_cli.data.toyworld import TOY_TASKS
from bmtpt_cli.data.toyworld3 import TOY3_TASKS
from bmtpt_cli.errors import BmtptError

DEMO_NAMES = ["demo_nli", "demo_review", "demo_rte", "demo_sentiment", "demo_topic"]


SPEC_TASKS = {  # SPEC §7's table and §6's expanded source set
    "mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola", "boolq", "cb", "multirc", "wic", "wsc", "record",
    "squad", "nq", "hotpotqa", "newsqa", "searchqa", "winogrande", "yelp_polarity", "scitail", "paws",
    "ag_news", "commonsense_qa", "openbookqa", "arc", "anli",
}


def test_registry_holds_the_demo_tasks_and_the_28_benchmark_tasks():
    assert available_tasks() == sorted(TASKS)
    assert {name: TASKS[name] for name in DEMO_NAMES} == DEMO_TASKS
    assert set(BENCHMARK_TASKS) == SPEC_TASKS and len(BENCHMARK_TASKS) == 28
    assert set(TASKS) == SPEC_TASKS | set(DEMO_NAMES) | set(TOY_TASKS) | set(TOY3_TASKS)
    assert len(TOY_TASKS) == len(TOY3_TASKS) == 16


def test_get_task_is_case_insensitive_and_strips():
    assert get_task("demo_nli") is DEMO_TASKS["demo_nli"]
    assert get_task("  Demo_RTE ") is DEMO_TASKS["demo_rte"]


def test_resolve_comma_string_and_list_keep_order():
    expected = [DEMO_TASKS["demo_sentiment"], DEMO_TASKS["demo_nli"], DEMO_TASKS["demo_topic"]]
    assert resolve_tasks("demo_sentiment, DEMO_NLI ,demo_topic") == expected
    assert resolve_tasks("demo_sentiment,demo_nli,demo_topic,") == expected
    assert resolve_tasks(["demo_sentiment", "demo_nli", "demo_topic"]) == expected
    assert resolve_tasks(["demo_sentiment,demo_nli", "demo_topic"]) == expected


@pytest.mark.parametrize("names", ["", " , ", [], [""]])
def test_empty_task_list_is_an_error(names):
    with pytest.raises(BmtptError, match="no tasks given.*`bmtpt tasks` lists the 65 available tasks"):
        resolve_tasks(names)


def test_duplicates_are_rejected_case_insensitively():
    with pytest.raises(BmtptError, match="more than once: demo_nli;"):
        resolve_tasks("demo_nli,demo_rte,Demo_NLI")


def test_unknown_names_get_close_matches_and_the_available_list():
    with pytest.raises(BmtptError) as caught:
        resolve_tasks("demo_sentimnt,demo_rte,banana")
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown tasks: demo_sentimnt (did you mean demo_sentiment?), banana;" in message
    assert message.endswith("`bmtpt tasks` lists the 65 available tasks")


def test_close_matches_cover_benchmark_names():
    with pytest.raises(BmtptError, match="unknown tasks: sst-2 \\(did you mean sst2"):
        get_task("sst-2")
    assert get_task("MNLI") is TASKS["mnli"]


def test_data_layer_imports_only_stdlib_torch_and_errors():
    code = (
        "import sys\n"
        "import bmtpt_cli.data.registry, bmtpt_cli.data.sampling, bmtpt_cli.scoring.metrics\n"
        "bad = [m for m in ('typer', 'rich', 'pydantic', 'pydantic_settings', 'transformers',"
        " 'datasets', 'bmtpt_cli.runner', 'bmtpt_cli.source', 'bmtpt_cli.adapter', 'bmtpt_cli.commands')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
