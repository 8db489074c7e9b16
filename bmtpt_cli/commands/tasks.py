"""`bmtpt tasks`: the task registry as a table or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bmtpt_cli.commands.display import user_errors
from bmtpt_cli.console import console
from bmtpt_cli.errors import BmtptError

FORMATS = ("table", "json")


def tasks_command(
    output_format: Annotated[str, typer.Option("--format", help="table (for people) or json (for scripts).")] = "table",
    benchmark: Annotated[str, typer.Option(help="Only this family: demo, glue, superglue, mrqa, others, source12.")] = "",
) -> None:
    """List the tasks bmtpt can load: benchmark, metrics, split rule, label words, data source."""
    with user_errors():
        if output_format not in FORMATS:
            raise BmtptError(f"unknown --format '{output_format}': use table or json")
        rows = task_rows(benchmark)
        if output_format == "json":
            console.print_json(json.dumps(rows))
        else:
            render(rows)


def task_rows(benchmark: str = "") -> list[dict]:
    """One dict per registered task (optionally of one benchmark family), in registry order."""
    from bmtpt_cli.data.registry import TASKS

    families = {task.benchmark for task in TASKS.values()}
    if benchmark and benchmark not in families:
        raise BmtptError(f"unknown --benchmark '{benchmark}': use one of {', '.join(sorted(families))}")
    return [
        {
            "name": task.name,
            "benchmark": task.benchmark,
            "metrics": list(task.metrics),
            "split": task.split_rule,
            "labels": list(task.label_words) if task.label_words else None,
            "source": task.source,
            "description": task.description,
        }
        for task in TASKS.values()
        if not benchmark or task.benchmark == benchmark
    ]


def render(rows: list[dict]) -> None:
    """The registry as a rich table on stdout."""
    from rich.table import Table

    table = Table(title=f"bmtpt tasks ({len(rows)})", caption="split: S = validation halved into dev/test; L = 1k of train as dev, validation as test (seed 42); O = the splits named")
    for column in ("name", "benchmark", "metrics", "split", "labels", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        labels = "/".join(row["labels"]) if row["labels"] else "(free text)"
        table.add_row(row["name"], row["benchmark"], ", ".join(row["metrics"]), row["split"], labels, row["source"])
    console.print(table)
