"""`bmtpt adapt` as one function: a method (`methods.registry`) and its source → target prompts
W ⊙ a_k b_kᵀ → prompts.safetensors, which records the method."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.methods.base import TASK_PROMPTS_DIR, StartRequest
from bmtpt_cli.methods.init import RetrievalTarget, check_init_particle, read_init_file
from bmtpt_cli.methods.registry import method_source, resolve_method, source_spec
from bmtpt_cli.methods.retrieve import read_sources
from bmtpt_cli.adapter.train import AdaptConfig, AdaptResult, AdaptStepRecord, adapt
from bmtpt_cli.adapter.prompt import copies_of
from bmtpt_cli.jobs.skeleton import run_fingerprint, train_then_save, training_run
from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts
from bmtpt_cli.artifacts.native import INPUT_DEPENDENT, MEMBERS
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.data.vocabulary import check_label_words
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.runtime.memory import check_batch_within_data
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress, on_main
from bmtpt_cli.runtime.provenance import provenance


@dataclass(frozen=True)
class AdaptJob:
    """Everything an adaptation run needs; `settings` is the resolved configuration recorded in the artifact.

    `prompt_length`: the length of a random init (None: 100); `required_length`: a length the user
    asked for explicitly, which an init file must match; `init_particle`: start from that particle
    of a particles file instead of the mean; `retrieval_steps`, `retrieval_measure`: how
    `init = "retrieve:DIR"` computes the target's task embedding and compares it (SPEC §3).
    """

    tasks: list[str]
    init: str
    method: str | None  # --method; None: the method --init means (`methods.registry.infer_method`)
    prior: bool  # --prior, which the method's prior rule reads
    init_particle: int | None
    retrieval_steps: int
    retrieval_measure: str
    prompt_length: int | None
    required_length: int | None
    runner: RunnerConfig
    data: DataConfig
    adapt: AdaptConfig
    output: RunOutput
    settings: dict
    report_to: str = "none"  # --report-to: the step records also go to csv, tensorboard, mlflow or wandb
    keep_checkpoint: bool = False  # keep the final checkpoint, so --resume --steps N can extend the run


def retrieval_line(details: dict) -> str:
    """One line saying which source prompt retrieval chose, with its similarity and the runner-up."""
    ranked = sorted(details["similarities"].items(), key=lambda item: -item[1])
    if details.get("method") == "retrieve-average":
        weights = ", ".join(f"{task} {weight:.2f}" for task, weight in details["weights"].items())
        line = (f"retrieve: the similarity-weighted average of the top {details['top']} ({weights}) initialises the target "
                f"({details['measure']} similarity to {details['embedding']['task']}'s task embedding")
    else:
        line = (f"retrieve: {details['chosen']} initialises the target ({details['measure']} similarity "
                f"{ranked[0][1]:.4f} to {details['embedding']['task']}'s task embedding")
        if len(ranked) > 1:
            line += f"; next {ranked[1][0]} {ranked[1][1]:.4f}"
    if details["excluded"]:
        line += f"; own prompt {', '.join(details['excluded'])} left out"
    return line + ")"


def run_adapt(job: AdaptJob, progress: Progress = SILENT) -> tuple[Path, dict[str, float]]:
    """Adapt the target prompts and write them (main process); returns the path and the kept dev metrics."""
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with training_run(output, job.runner) as (dist, device):
        spec = source_spec(job.method, job.init)  # --method spot --init DIR: retrieve:DIR
        init_file = read_init_file(spec)  # a local file is checked before any data is fetched
        check_init_particle(spec, init_file, job.init_particle)
        method = resolve_method(job.method, spec, init_file, job.init_particle, job.prior)
        retrieves = method.retrieves
        if method.candidates:
            raise BmtptError(
                f"method {method.name} tunes from several source prompts and keeps the best on dev, which bmtpt runs as "
                f"few-shot cells (bmtpt fewshot --methods {method.name}); for a full-data run, adapt from each candidate "
                "(--init DIR/TASK.safetensors) and keep the best dev score"
            )
        if method.source == TASK_PROMPTS_DIR:
            if retrieves and len(tasks) != 1:
                raise BmtptError(
                    f"method {method.name} retrieves one source prompt for one target task, but --tasks names {len(tasks)}: "
                    "adapt one task at a time"
                )
            read_sources(spec)  # a missing or empty directory shows before the model loads
        data = job.data.splits(tasks, "train", "validation")  # data problems show before the model loads
        train_by_task, dev_by_task = data["train"], data["validation"]
        check_batch_within_data(job.adapt.batch_size, {name: len(examples) for name, examples in train_by_task.items()},
                                setting="--batch-size", value=job.adapt.batch_size)
        runner = load_runner(job.runner, device, progress)
        for task in tasks:  # before training: the first dev evaluation would find it only after eval_every steps
            check_label_words(runner.tokenizer, task, job.data.label_style)
        shown = on_main(progress, dist.is_main)
        target = None
        if retrieves:
            target = RetrievalTarget(
                tasks[0].name, train_by_task[tasks[0].name], job.data.label_style, steps=job.retrieval_steps,
                measure=job.retrieval_measure, config=job.adapt,
            )
        init = method.start(StartRequest(
            runner, job.adapt.seed, source=method_source(method, spec), prompt_length=job.prompt_length,
            required_length=job.required_length, init_file=init_file, target=target,
            target_tasks=tuple(task.name for task in tasks), progress=shown, load_examples=job.data.train_reader(),
        ))
        if target is not None:
            shown.note(retrieval_line(init.details))
        prompts = method.prompt_module(init, [task.name for task in tasks], runner, job.adapt.seed)
        centre = method.prior_centre(init, job.prior)
        length = prompts.length
        check_step_fits(
            runner, [e for examples in train_by_task.values() for e in examples[:500]],
            sequences=job.adapt.batch_size * copies_of(prompts), prompt_length=length,
            trainable_elements=sum(p.numel() for p in prompts.parameters()),
            what=f"batches of {job.adapt.batch_size} sequences of {{length}} tokens",
            lower="--batch-size or --max-source-length (or pass --grad-checkpointing)",
            host_examples=job.adapt.batch_size, setting=("--batch-size", job.adapt.batch_size, 1),
        )
        if init.model is not None and init.model != job.runner.model:
            shown.note(f"warning: '{job.init}' was made with model {init.model}, adapting with {job.runner.model}")
        if init.prior_mean is None and job.prior and not method.needs_source:
            shown.note(f"note: {'--init random' if job.method is None else 'method ' + method.name} has no source "
                       "posterior, so no prior term is used (vanilla prompt tuning)")
        fingerprint = run_fingerprint(
            job.adapt.fingerprint(), job.runner, job.data, [task.name for task in tasks], data,
            prior=job.prior, **({"method": method.name} if job.method is not None else {}),
            init_sha256=init.sha256, init=job.init,
            **({"init_particle": job.init_particle} if job.init_particle is not None else {}),
            **({"retrieval_steps": job.retrieval_steps, "retrieval_measure": job.retrieval_measure} if retrieves else {}),
        )

        def train(files: RunFiles, update) -> AdaptResult:
            def show(record: AdaptStepRecord) -> None:
                info = f"loss {record.loss:.4f}"
                if record.dev:
                    info += f" · dev mean {sum(record.dev.values()) / len(record.dev):.3f}"
                update(record.step, info)

            return adapt(
                runner, tasks, train_by_task, dev_by_task, prompts, job.adapt, prior_mean=centre,
                label_style=job.data.label_style, files=files, on_start=update, on_step=show, dist=dist,
            )

        def save(result: AdaptResult) -> None:
            metadata = common_metadata(
                kind=PROMPTS, model=job.runner.model, d_model=runner.d_model,
                prompt_length=length, config=job.settings,
            )
            metadata |= {
                "bmtpt.method": method.name,
                "bmtpt.init": job.init,
                "bmtpt.init_sha256": init.sha256,
                "bmtpt.init_details": json.dumps(init.details, sort_keys=True),
                "bmtpt.dev_metrics": json.dumps(result.dev_metrics),
                "bmtpt.dev_metric_names": json.dumps({task.name: task.metric for task in tasks}),
                "bmtpt.best_step": str(result.best_step),
                "bmtpt.prior": method.prior_description(init, job.prior, job.adapt.sigma),
                "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
                "bmtpt.data": json.dumps(job.data.provenance(tasks), sort_keys=True),
            }
            shared, scales, extra = result.prompts.artifact_tensors()
            if not result.prompts.fixed:
                metadata[INPUT_DEPENDENT] = "true"
            if copies_of(result.prompts) > 1:
                metadata[MEMBERS] = str(copies_of(result.prompts))
            save_prompts(output.out, shared, scales, metadata=metadata, extra=extra)

        result = train_then_save(
            output, dist=dist, progress=shown, label="adapt", steps=job.adapt.steps, fingerprint=fingerprint,
            report_to=job.report_to, settings=job.settings, train=train, save=save, keep_checkpoint=job.keep_checkpoint,
        )
    return output.out, result.dev_metrics
