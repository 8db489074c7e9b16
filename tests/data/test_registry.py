"""The task registry: lookup, parsing of name lists, and the one-line errors."""

import subprocess
import sys

import pytest

from bmtpt_cli.data.demo import DEMO_TASKS
from bmtpt_cli.data.registry import PLANNED_TASKS, TASKS, available_tasks, get_task, resolve_tasks
from bmtpt_cli.errors import BmtptError

DEMO_NAMES = ["demo_nli", "demo_review", "demo_rte", "demo_sentiment", "demo_topic"]


def test_available_tasks_are_the_demo_tasks_sorted():
    assert available_tasks() == DEMO_NAMES
    assert TASKS == DEMO_TASKS


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
    with pytest.raises(BmtptError, match="no tasks given.*available: demo_nli"):
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
    assert message.endswith("available now: " + ", ".join(DEMO_NAMES))
    assert "not available yet" not in message


def test_planned_tasks_say_they_are_not_available_yet():
    with pytest.raises(BmtptError) as caught:
        resolve_tasks("mnli,demo_nli,QNLI")
    message = str(caught.value)
    assert message == (
        "tasks not available yet: mnli, qnli (the GLUE/SuperGLUE/MRQA loaders arrive with the "
        "data registry); available now: " + ", ".join(DEMO_NAMES)
    )
    with pytest.raises(BmtptError, match="unknown tasks: sst-2 \\(did you mean sst2"):
        get_task("sst-2")


def test_planned_tasks_cover_spec_section_7_and_are_not_loadable():
    assert len(PLANNED_TASKS) == len(set(PLANNED_TASKS)) == 28
    assert {"mnli", "record", "squad", "yelp_polarity", "paws", "anli"} <= set(PLANNED_TASKS)
    assert not set(PLANNED_TASKS) & set(TASKS)


def test_data_layer_imports_only_stdlib_torch_and_errors():
    code = (
        "import sys\n"
        "import bmtpt_cli.data.registry, bmtpt_cli.data.sampling, bmtpt_cli.evaluation.metrics\n"
        "bad = [m for m in ('typer', 'rich', 'pydantic', 'pydantic_settings', 'transformers',"
        " 'datasets', 'bmtpt_cli.runner', 'bmtpt_cli.svgd', 'bmtpt_cli.adapter', 'bmtpt_cli.commands')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
