"""`bmtpt evaluate`: test metrics of target prompts, or the few-shot probe with --shots."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, render_results, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import EvaluateSettings, build


def run(settings: EvaluateSettings) -> None:
    """Score a prompts file, or (with --shots) run the few-shot probe from --init; show the table."""
    required_length = settings.explicit("prompt_length")
    progress = RichProgress()
    if settings.shots:
        from bmtpt_cli.experiments.probe import FewshotJob, run_fewshot

        job = build(
            FewshotJob, settings, required_length=required_length, eval_every=None, checkpoint_every=settings.steps,
            out=settings.output, settings=settings.model_dump(mode="json"),
        )
        report = run_fewshot(job, progress)
    else:
        from bmtpt_cli.jobs.evaluate import EvaluateJob, run_evaluate

        report = run_evaluate(build(
            EvaluateJob, settings, required_length=required_length, out=settings.output, settings=settings.model_dump(mode="json")
        ), progress)
    render_results(report)
    if settings.calibrate:
        show_temperatures(report)
    wrote(settings.output)
    if report.get("predictions"):
        wrote(report["predictions"])
    for plot in report.get("plots", []):
        wrote(plot)
    if settings.plots and not report.get("plots"):
        progress.note("note: --plots drew no reliability diagram: no task is rank-scored (they need --decode rank)")


def show_temperatures(report: dict) -> None:
    """One line per task after the results table: its calibration before and after temperature scaling."""
    from bmtpt_cli.console import console

    for row in report["results"]:
        entry = row.get("calibration", {})
        scaled = entry.get("scaled")
        if scaled is None:
            console.print(f"{row['task']}: temperature {entry.get('temperature', 'not defined')}", markup=False, soft_wrap=True)
            continue
        fitted = entry.get("fitted_on", "")
        seeds = entry.get("temperature_per_seed")
        temperature = (f"T = {entry['temperature']:.4g}" if seeds is None else
                       "T per seed " + ", ".join(f"{t:.3g}" for t in seeds.values()))
        console.print(
            f"{row['task']}: {temperature} (fitted on {fitted}): ECE {100 * entry['ece']:.1f} → {100 * scaled['ece']:.1f} "
            f"points, NLL {entry['nll']:.4f} → {scaled['nll']:.4f}, Brier {entry['brier']:.4f} → {scaled['brier']:.4f}",
            markup=False, soft_wrap=True,
        )


evaluate_command = settings_command(
    "evaluate", run, "Score target prompts on each task's test split; with --shots, the few-shot probe from --init."
)
