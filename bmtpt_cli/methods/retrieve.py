"""SPoT-style retrieval (Vu et al. 2022; SPEC §3): the source prompt most similar to the target's
task embedding initialises the target prompt and is its prior mean.

The target's task embedding is the prompt a short prompt-tuning run on the target's training
examples produces (`task_embedding`: `adapter.train.adapt` from a random vocabulary init drawn from
the seed, no prior, `steps` steps, no warm-up, no dev selection). Every prompt of a per-task
directory (`bmtpt source --per-task`) is compared with it by `transfer.similarity.task_similarity`;
the target's own task, when the directory holds it, is left out (it would be no transfer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.adapter import train as adapter_train
from bmtpt_cli.adapter import defaults as paper
from bmtpt_cli.adapter.train import AdaptConfig
from bmtpt_cli.artifacts import check_model_fit
from bmtpt_cli.artifacts.task_prompts import TaskPrompt, read_task_prompts
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.sampling import EpochBatches
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.scoring.similarity import MEASURES, task_similarity

RETRIEVE_PREFIX = "retrieve:"
DEFAULT_RETRIEVAL_STEPS = 100


@dataclass(frozen=True)
class RetrievalTarget:
    """The target a `retrieve:DIR` init is chosen for: its task, training examples and format.

    `steps` and `measure` are `--retrieval-steps` and `--retrieval-measure`; `config` is the run's
    adaptation config, whose batch size, learning rates and weight decay the embedding run uses
    (None: the paper's adaptation values, `adapter.defaults`).
    """

    task: str
    examples: list[TextExample]
    label_style: str = "words"
    steps: int = DEFAULT_RETRIEVAL_STEPS
    measure: str = "mean"
    config: AdaptConfig | None = None


@dataclass(frozen=True)
class Retrieval:
    """What retrieval chose: the source prompt, and every candidate's similarity to the target."""

    chosen: TaskPrompt
    embedding: torch.Tensor  # (l, d): the target's task embedding
    similarities: dict[str, float]  # source task -> similarity, the target's own task left out
    excluded: list[str]  # the target's own task, when the directory holds it

    def details(self, directory: str, target: RetrievalTarget, seed: int) -> dict:
        """The JSON record of the choice (`bmtpt.init_details` in the artifact)."""
        return {
            "method": "retrieve",
            "directory": directory,
            "chosen": self.chosen.task,
            "chosen_file": self.chosen.path.name,
            "measure": target.measure,
            "similarities": self.similarities,
            "excluded": self.excluded,
            "embedding": {"task": target.task, "steps": target.steps, "seed": seed, "examples": len(target.examples),
                          "init": "random vocabulary draw from the seed", "prior": "none"},
        }


def is_retrieval(spec: str) -> bool:
    """Whether `--init` asks for retrieval (`retrieve:DIR`)."""
    return spec.startswith(RETRIEVE_PREFIX)


def retrieval_directory(spec: str) -> Path:
    """The DIR of `retrieve:DIR`, refused in one line when empty."""
    directory = spec[len(RETRIEVE_PREFIX):]
    if not directory:
        raise BmtptError("--init retrieve: needs a directory: pass --init retrieve:DIR with DIR from `bmtpt source --per-task`")
    return Path(directory)


def read_sources(spec: str, *, d_model: int | None = None, prompt_length: int | None = None) -> dict[str, TaskPrompt]:
    """The candidate prompts of `retrieve:DIR`; a missing or empty DIR, or prompts made for another
    width (`d_model`) or, when given, length (`prompt_length`), are refused in one line."""
    directory = retrieval_directory(spec)
    sources = read_task_prompts(directory, flag="--init retrieve:DIR")
    if d_model is not None:
        for source in sources.values():
            check_model_fit(source.path, source.metadata, d_model=d_model, prompt_length=prompt_length)
            if source.prompt.shape[1] != d_model:  # metadata and tensor disagree: a hand-made file
                raise BmtptError(
                    f"'{source.path}' holds prompts of width {source.prompt.shape[1]}, the model has d_model={d_model}: "
                    "re-create it with bmtpt source --per-task for this model"
                )
    return sources


def embedding_config(target: RetrievalTarget, seed: int) -> AdaptConfig:
    """The short prompt-tuning run of the task embedding: the adaptation config with `target.steps`
    steps, no warm-up, no dev selection, seeded by `seed` (the caller passes no prior centre)."""
    base = target.config or AdaptConfig(
        steps=target.steps, batch_size=paper.BATCH_SIZE, lr_shared=paper.LR_SHARED, lr_scales=paper.LR_SCALES,
        sigma=paper.SIGMA, warmup_steps=0, weight_decay=paper.WEIGHT_DECAY, eval_every=None,
        eval_batch_size=paper.BATCH_SIZE, rank_score="sum", invalid_predictions="wrong", mixing_cap=None, seed=seed,
        checkpoint_every=target.steps,
    )
    return dataclasses.replace(
        base, steps=target.steps, warmup_steps=0, eval_every=None, seed=seed, checkpoint_every=target.steps,
    )


def task_embedding(
    runner: FrozenT5Runner,
    target: RetrievalTarget,
    *,
    length: int,
    seed: int,
    vocab_top_k: int = 5000,
    progress: Progress = SILENT,
) -> torch.Tensor:
    """The target's task embedding `(l, d)`: its composed prompt W ⊙ a bᵀ after `target.steps` steps
    of prompt tuning from a random vocabulary init drawn from `seed` (SPEC §3, SPoT)."""
    generator = torch.Generator().manual_seed(seed)
    start = sample_vocab_prompts(
        runner.vocab_embeddings, count=1, length=length, candidate_ids=runner.vocab_candidate_ids(vocab_top_k),
        generator=generator,
    )[0]  # (l, d): the same draw as `--init random` with this seed
    (task,) = resolve_tasks([target.task])
    config = embedding_config(target, seed)
    with progress.bar(f"task embedding of {target.task}", config.steps) as update:
        result = adapter_train.adapt(
            runner, [task], {task.name: target.examples}, {}, start, config, prior_mean=None,
            label_style=target.label_style, batches=EpochBatches(task.name, target.examples, config.batch_size),
            on_step=lambda record: update(record.step, f"loss {record.loss:.4f}"),
        )
    return result.prompts.compose(0).detach().cpu()  # (l, d)


def choose_source(embedding: torch.Tensor, sources: dict[str, TaskPrompt], target: str, measure: str) -> Retrieval:
    """The source prompt most similar to `embedding` by `measure` (ties: the first task by name),
    the target's own task left out."""
    if measure not in MEASURES:
        raise BmtptError(f"unknown retrieval measure '{measure}': use one of {', '.join(MEASURES)}")
    candidates = {task: source for task, source in sources.items() if task != target}
    if not candidates:
        path = next(iter(sources.values())).path.parent
        raise BmtptError(
            f"'{path}' holds only the target task's own prompt ({target}): add other source tasks' prompts "
            "with bmtpt source --per-task --resume --tasks ..."
        )
    similarities = {task: task_similarity(embedding, source.prompt, measure) for task, source in candidates.items()}
    chosen = max(similarities, key=lambda task: (similarities[task], -list(similarities).index(task)))
    return Retrieval(candidates[chosen], embedding, similarities, [target] if target in sources else [])


def retrieve(
    spec: str,
    runner: FrozenT5Runner,
    target: RetrievalTarget,
    *,
    seed: int,
    required_length: int | None = None,
    vocab_top_k: int = 5000,
    progress: Progress = SILENT,
) -> Retrieval:
    """`--init retrieve:DIR`: read DIR's prompts, embed the target, pick the most similar source."""
    sources = read_sources(spec, d_model=runner.d_model, prompt_length=required_length)
    if not target.examples:
        raise BmtptError(f"task {target.task} has no training examples to compute its task embedding from; check its data")
    length = next(iter(sources.values())).prompt.shape[0]  # the embedding has the sources' length
    embedding = task_embedding(runner, target, length=length, seed=seed, vocab_top_k=vocab_top_k, progress=progress)
    return choose_source(embedding, sources, target.task, target.measure)
