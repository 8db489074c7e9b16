"""`bmtpt fewshot`: the few-shot grid (methods × k × tasks × seeds) → results.jsonl, table, plot, report."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import FewshotSettings, build


def run(settings: FewshotSettings) -> None:
    """Build the grid job from the settings, run the cells not done yet, print the table."""
    from bmtpt_cli.console import console
    from bmtpt_cli.experiments.grid import TABLE_MD, GridJob, run_grid
    from bmtpt_cli.runner.model import TINY_MODEL

    job = build(
        GridJob, settings, required_length=settings.explicit("prompt_length"), eval_every=None,
        checkpoint_every=settings.steps, settings=settings.model_dump(mode="json"),
    )
    run_grid(job, RichProgress())
    console.print((settings.out / TABLE_MD).read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    if settings.model == TINY_MODEL:
        console.print("model 'tiny' has random weights: these scores are chance level (the run checks the pipeline, not the method)", markup=False)
    wrote(settings.out)


fewshot_command = settings_command(
    "fewshot", run,
    "The few-shot grid of docs/SPEC.md §4 (the paper's Table 2): every method × k × task × seed adapted on the"
    " same k-shot subsets and scored; writes results.jsonl, table.md/.csv, plot.png and report.json to --out.",
)
