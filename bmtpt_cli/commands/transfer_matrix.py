"""`bmtpt transfer-matrix`: zero-shot transfer, transfer with tuning, transferability indicators (prompt
similarity, neuron stimulation) between per-task prompts, and how well each indicator predicts the transfer."""

from __future__ import annotations

import math

from bmtpt_cli.commands.display import RichProgress, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.console import console
from bmtpt_cli.settings import TransferMatrixSettings, build


def run(settings: TransferMatrixSettings) -> None:
    """Build the job from the settings, compute and write the matrices, show the relative zero-shot table."""
    from bmtpt_cli.adapter.train import AdaptConfig
    from bmtpt_cli.experiments.transfer.run import TransferMatrixJob, run_transfer_matrix

    adapt = None
    if settings.tune:
        adapt = build(
            AdaptConfig, settings, steps=settings.tune, warmup_steps=0, eval_every=None, checkpoint_every=settings.tune
        )
    job = build(
        TransferMatrixJob, settings, adapt=adapt, required_length=settings.explicit("prompt_length"),
        settings=settings.model_dump(mode="json"),
    )
    report = run_transfer_matrix(job, RichProgress())
    render(report)
    wrote(report.out)


def render(report) -> None:
    """The relative zero-shot matrix as a table, one summary line per matrix written, then the indicators
    ranked by their correlation with each transfer matrix."""
    from rich.table import Table

    from bmtpt_cli.runner.model import TINY_MODEL

    matrices = {matrix.name: matrix for matrix in report.matrices}
    relative = matrices["zero_shot_relative"]
    caption = ("model 'tiny' has random weights: these scores are chance level" if report.model == TINY_MODEL else None)
    table = Table(title=relative.title, caption=caption)
    table.add_column("source \\ target")
    for column in relative.columns:
        table.add_column(column, justify="right")
    for i, (name, row) in enumerate(zip(relative.rows, relative.values)):
        table.add_row(name, *(table_cell(relative, i, j, v) for j, v in enumerate(row)))
    console.print(table)
    for matrix in report.matrices:
        console.print(summary(matrix), markup=False, highlight=False, soft_wrap=True)
    for transfer in dict.fromkeys(row.transfer for row in report.correlations):
        console.print(correlation_table([row for row in report.correlations if row.transfer == transfer],
                                        matrices[transfer].title))


def correlation_table(rows, title: str):
    """The indicators ranked by their pooled Spearman ρ with one transfer matrix: n, r, ρ and their p-values."""
    from rich.table import Table

    table = Table(title=f"Indicators vs {title}, ranked by Spearman ρ over pairs source ≠ target")
    for name in ("indicator", "n", "Pearson r", "p", "Spearman ρ", "p"):
        table.add_column(name, justify="left" if name == "indicator" else "right")
    for row in rows:
        c = row.overall
        table.add_row(row.indicator, str(c.n), figure(c.pearson, ".2f"), figure(c.pearson_p, ".2g"),
                      figure(c.spearman, ".2f"), figure(c.spearman_p, ".2g"))
    return table


def figure(value: float, spec: str) -> str:
    """A correlation figure, n/a when undefined (fewer than 3 pairs, or a constant side)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def table_cell(matrix, i: int, j: int, value: float) -> str:
    """A table cell: the value, `— (n/n invalid)` when every generation was invalid, else n/a if undefined."""
    from bmtpt_cli.experiments.transfer.matrix import all_invalid, invalid_text

    if not math.isnan(value):
        return f"{value:.1f}"
    if matrix.invalid and all_invalid(matrix.invalid[i][j], matrix.examples[i][j]):
        return invalid_text(matrix.invalid[i][j], matrix.examples[i][j])
    return "n/a"


def summary(matrix) -> str:
    """One line: the matrix's name and shape, its range, and its largest off-diagonal cell."""
    cells = [(v, r, c) for r, row in zip(matrix.rows, matrix.values) for c, v in zip(matrix.columns, row) if not math.isnan(v)]
    line = f"{matrix.name}: {len(matrix.rows)}×{len(matrix.columns)} ({matrix.unit})"
    if not cells:
        every = matrix.invalid and all(n and n >= total for r, e in zip(matrix.invalid, matrix.examples) for n, total in zip(r, e))
        return line + ", no defined cells" + (" (every generation invalid)" if every else "")
    line += f", range {min(cells)[0]:{matrix.cell_format}} … {max(cells)[0]:{matrix.cell_format}}"
    off = [cell for cell in cells if cell[1] != cell[2] and cell[1] != "random init"]  # a source prompt on another task
    if off:
        value, row, column = max(off)
        line += f", best off-diagonal {row} → {column} {value:{matrix.cell_format}}"
    return line


transfer_matrix_command = settings_command(
    "transfer-matrix", run,
    "Transferability between per-task prompts (docs/SPEC.md §5): zero-shot transfer relative to each target's own"
    " prompt, --tune STEPS for transfer with tuning (relative error reduction over random-init prompt tuning),"
    " transferability indicators (task-embedding and prompt similarities, neuron stimulation) and each indicator's"
    " Pearson and Spearman correlation with the transfer; CSV, JSON and a heatmap PNG per matrix, correlations.csv,"
    " .json, .md and scatter plots in --out. --taskless is recommended, so a prompt cannot lean on the task name in"
    " the input.",
)
