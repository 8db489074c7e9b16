"""`bmtpt export`: target prompts as PEFT prompt-tuning adapters or plain tensors, each with a model card."""

from __future__ import annotations

from bmtpt_cli.commands.display import RichProgress, wrote
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import SETTINGS_BY_COMMAND, ExportSettings, build


def run(settings: ExportSettings) -> None:
    """Export the prompts file and say where each task went."""
    from bmtpt_cli.console import console
    from bmtpt_cli.export.run import ExportJob, describe, run_export

    job = build(
        ExportJob, settings, base_model=settings.explicit("model"),
        settings_by_command={name: frozenset(cls.model_fields) for name, cls in SETTINGS_BY_COMMAND.items()},
    )
    report = run_export(job, RichProgress())
    for line in describe(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    wrote(report.out)


export_command = settings_command(
    "export",
    run,
    "Export target prompts for serving: PEFT prompt-tuning adapters (one per task, or --multitask) or the composed "
    "prompts as safetensors, each with a README.md model card (docs/SPEC.md §8). --model, given, is recorded as the "
    "base model instead of the one the prompts were trained on.",
)
