"""`bmtpt source`: learn the source posterior's particles and write particles.safetensors, or with
--per-task one prompt per source task into a directory."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import SourceSettings, build


def run(settings: SourceSettings) -> None:
    """Build the source job from the settings, run it, say what was written."""
    from bmtpt_cli.jobs.source import SourceJob, run_source

    job = build(SourceJob, settings, settings=settings.model_dump(mode="json"))
    out = run_source(job, RichProgress())
    wrote(f"{out}/ (one prompt per task: {', '.join(settings.tasks)})" if settings.per_task else out)


source_command = settings_command(
    "source", run, "Learn M particles of the source tasks' joint posterior with Damped SVGD (docs/SPEC.md §2)."
)
