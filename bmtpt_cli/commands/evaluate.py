"""`bmtpt evaluate`: test metrics of target prompts, or the few-shot probe with --shots."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, render_results, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import EvaluateSettings, build


def run(settings: EvaluateSettings) -> None:
    """Score a prompts file, or (with --shots) run the few-shot probe from --init; show the table."""
    required_length = settings.explicit("prompt_length")
    if settings.shots:
        from bmtpt_cli.experiments.probe import FewshotJob, run_fewshot

        job = build(
            FewshotJob, settings, required_length=required_length, eval_every=None, checkpoint_every=settings.steps,
            out=settings.output, settings=settings.model_dump(mode="json"),
        )
        report = run_fewshot(job, RichProgress())
    else:
        from bmtpt_cli.jobs.evaluate import EvaluateJob, run_evaluate

        report = run_evaluate(build(
            EvaluateJob, settings, required_length=required_length, out=settings.output, settings=settings.model_dump(mode="json")
        ), RichProgress())
    render_results(report)
    wrote(settings.output)
    if report.get("predictions"):
        wrote(report["predictions"])


evaluate_command = settings_command(
    "evaluate", run, "Score target prompts on each task's test split; with --shots, the few-shot probe from --init."
)
