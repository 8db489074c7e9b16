"""`bmtpt project`: move a prompts or particles artifact to another model through a trained projector."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import ProjectSettings, build


def run(settings: ProjectSettings) -> None:
    """Build the projection job from the settings, run it, say what was written."""
    from bmtpt_cli.console import err_console
    from bmtpt_cli.jobs.project import ProjectJob, run_project
    from bmtpt_cli.runtime.distributed import is_main_process

    job = build(ProjectJob, settings, settings=settings.model_dump(mode="json"), target_named=settings.target_named)
    result = run_project(job, RichProgress())
    if result.trained:
        if is_main_process() and result.loss is not None:
            what = "token cross-entropy" if result.objective == "task" else "mean squared distance"
            err_console.print(f"projector: last step's {what} {result.loss:.4g} ({result.objective} objective on "
                              f"{', '.join(result.tasks)})", markup=False, soft_wrap=True)
        wrote(result.projector)
    wrote(f"{result.out}/ (one prompt per task)" if result.out.is_dir() else result.out)


project_command = settings_command(
    "project", run,
    "Move a particles or prompts artifact to another model (--model) through a projector trained on the target "
    "model's task loss or on pairs of the two models' prompts (docs/SPEC.md §5f).",
)
