"""`bmtpt adapt`: adapt target prompts from the source posterior and write prompts.safetensors."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, render_dev, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import AdaptSettings, build


def run(settings: AdaptSettings) -> None:
    """Build the adaptation job from the settings, run it, show the kept dev metrics."""
    from bmtpt_cli.jobs.adapt import AdaptJob, run_adapt
    from bmtpt_cli.runtime.distributed import is_main_process

    job = build(
        AdaptJob, settings, settings=settings.model_dump(mode="json"), required_length=settings.explicit("prompt_length")
    )
    out, dev_metrics = run_adapt(job, RichProgress())
    if is_main_process():
        render_dev(dev_metrics)
    wrote(out)


adapt_command = settings_command(
    "adapt", run, "Adapt target prompts W ⊙ abᵀ from the particle mean, with the Gaussian prior (docs/SPEC.md §3)."
)
