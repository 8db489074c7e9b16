"""`bmtpt adapt` as one function: init file → target prompts W ⊙ a_k b_kᵀ → prompts.safetensors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.adapter.init import read_init_file, resolve_init
from bmtpt_cli.adapter.train import AdaptConfig, AdaptStepRecord, adapt
from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.runner.model import resolve_device
from bmtpt_cli.runtime.distributed import data_parallel
from bmtpt_cli.runtime.files import main_process_lock
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress, on_main
from bmtpt_cli.runtime.provenance import provenance


@dataclass(frozen=True)
class AdaptJob:
    """Everything an adaptation run needs; `settings` is the resolved configuration recorded in the artifact.

    `prompt_length`: the length of a random init (None: 100); `required_length`: a length the user
    asked for explicitly, which an init file must match.
    """

    tasks: list[str]
    init: str
    prompt_length: int | None
    required_length: int | None
    runner: RunnerConfig
    data: DataConfig
    adapt: AdaptConfig
    output: RunOutput
    settings: dict


def prior_description(has_posterior: bool, config: AdaptConfig) -> str:
    """The prior term the run actually used, in words (the settings alone do not say it for a random init)."""
    if not has_posterior:
        return "none: the init has no source posterior (vanilla prompt tuning)"
    if not config.prior:
        return "none: --no-prior"
    return f"N(mean of the init, sigma^2 I), sigma = {config.sigma:g}"


def run_adapt(job: AdaptJob, progress: Progress = SILENT) -> tuple[Path, dict[str, float]]:
    """Adapt the target prompts and write them (main process); returns the path and the kept dev metrics."""
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with data_parallel(resolve_device(job.runner.device)) as (dist, device), main_process_lock(output.out, dist.is_main):
        output.check()
        init_file = read_init_file(job.init)  # a local file is checked before any data is fetched
        data = job.data.splits(tasks, "train", "validation")  # data problems show before the model loads
        train_by_task, dev_by_task = data["train"], data["validation"]
        runner = load_runner(job.runner, device, progress)
        init = resolve_init(
            job.init, runner, prompt_length=job.prompt_length, required_length=job.required_length,
            seed=job.adapt.seed, init_file=init_file,
        )
        length = init.prompt.shape[0]
        check_step_fits(
            runner, [e for examples in train_by_task.values() for e in examples[:500]],
            sequences=job.adapt.batch_size, prompt_length=length,
            trainable_elements=length * runner.d_model + len(tasks) * (length + runner.d_model),
            what=f"batches of {job.adapt.batch_size} sequences of {{length}} tokens",
            lower="--batch-size or --max-source-length (or pass --grad-checkpointing)",
        )
        shown = on_main(progress, dist.is_main)
        if init.model is not None and init.model != job.runner.model:
            shown.note(f"warning: '{job.init}' was made with model {init.model}, adapting with {job.runner.model}")
        if init.prior_mean is None and job.adapt.prior:
            shown.note("note: --init random has no source posterior, so no prior term is used (vanilla prompt tuning)")
        fingerprint = {
            **job.adapt.fingerprint(),
            "model": job.runner.model,
            "tasks": [task.name for task in tasks],
            "init_sha256": init.sha256,
            "init": job.init,
            **job.data.fingerprint(),
            **job.runner.fingerprint(),
        }
        with shown.bar("adapt", job.adapt.steps) as update:

            def show(record: AdaptStepRecord) -> None:
                info = f"loss {record.loss:.4f}"
                if record.dev:
                    info += f" · dev mean {sum(record.dev.values()) / len(record.dev):.3f}"
                update(record.step, info)

            result = adapt(
                runner, tasks, train_by_task, dev_by_task, init.prompt, job.adapt,
                prior_mean=init.prior_mean, label_style=job.data.label_style,
                files=RunFiles(output.checkpoint, output.log, output.resume, fingerprint),
                on_start=update, on_step=show, dist=dist,
            )
        if dist.is_main:
            metadata = common_metadata(
                kind=PROMPTS, model=job.runner.model, d_model=runner.d_model,
                prompt_length=init.prompt.shape[0], config=job.settings,
            )
            metadata |= {
                "bmtpt.init": job.init,
                "bmtpt.init_sha256": init.sha256,
                "bmtpt.dev_metrics": json.dumps(result.dev_metrics),
                "bmtpt.dev_metric_names": json.dumps({task.name: task.metric for task in tasks}),
                "bmtpt.best_step": str(result.best_step),
                "bmtpt.prior": prior_description(init.prior_mean is not None, job.adapt),
                "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
                "bmtpt.data": json.dumps(job.data.provenance(tasks), sort_keys=True),
            }
            save_prompts(output.out, result.prompts.shared.detach(), result.prompts.export(), metadata=metadata)
            output.checkpoint.unlink(missing_ok=True)
    return output.out, result.dev_metrics
