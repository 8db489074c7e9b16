"""Where a target prompt starts (SPEC §3): the particle mean or one particle, another prompts file,
random vocabulary, or the source prompt retrieved by task-embedding similarity (`retrieve:DIR`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from bmtpt_cli.adapter import defaults as paper
from bmtpt_cli.methods.retrieve import RETRIEVE_PREFIX, RetrievalTarget, is_retrieval, retrieve
from bmtpt_cli.artifacts import PARTICLES, PROMPTS, check_model_fit, file_sha256, load_particles, load_prompts, read_kind
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.progress import SILENT, Progress

__all__ = [
    "DEFAULT_PROMPT_LENGTH", "RANDOM_INIT", "RETRIEVE_PREFIX", "InitFile", "RetrievalTarget", "TargetInit",
    "check_init_particle", "is_retrieval", "read_init_file", "resolve_init",
]

RANDOM_INIT = "random"
DEFAULT_PROMPT_LENGTH = paper.PROMPT_LENGTH


@dataclass
class TargetInit:
    """The initial W `(l, d)`, the prior mean θ̄^S (None: no source posterior, no prior) and provenance."""

    prompt: torch.Tensor  # (l, d)
    prior_mean: torch.Tensor | None  # (l, d)
    source: str  # the --init value
    sha256: str  # of the init file (retrieval: of the chosen source prompt's file); "" for random
    model: str | None  # the model the init was made for
    details: dict = field(default_factory=dict)  # JSON-able: {"particle": i, ...}, the retrieval record, or {}
    sources: torch.Tensor | None = None  # (S, l, d): frozen source prompts a method mixes (ATTEMPT), else None
    members: torch.Tensor | None = None  # (M, l, d): where an ensemble's members start (bmtpt-ensemble), else None


@dataclass
class InitFile:
    """A particles or prompts file read for `--init`, before any model is loaded."""

    path: Path
    prompt: torch.Tensor  # (l, d): the particle mean, or the mean of the composed task prompts
    metadata: dict[str, str]
    particles: torch.Tensor | None = None  # (M, l, d) of a particles file; None for a prompts file


def read_init_file(spec: str) -> InitFile | None:
    """Read and check `--init` when it names a file (None for `random` and `retrieve:DIR`); no model needed.

    - a particles file: θ̄^S, the mean of the M particles;
    - a prompts file: the mean of its tasks' composed prompts W ⊙ a_k b_kᵀ (one task: that prompt).
    """
    if spec == RANDOM_INIT or is_retrieval(spec):
        return None
    path = Path(spec)
    if path.is_dir():
        raise BmtptError(
            f"--init '{path}' is a directory: pass --init retrieve:{path} to start from its prompt most similar to the "
            f"target, or --init {path / 'TASK.safetensors'} for one task's prompt"
        )
    if not path.is_file():
        raise BmtptError(f"init file '{path}' not found: run `bmtpt source` first, or pass --init random or an existing file")
    kind = read_kind(path)
    if kind == PROMPTS:
        artifact = load_prompts(path, flag="--init")
        if not artifact.tasks:  # no mean to start from (adapting from it would give a NaN loss, not a diagnosis)
            raise BmtptError(f"prompts file '{path}' holds no task prompts, so it has no mean: re-create it with bmtpt adapt")
        return InitFile(path, torch.stack([artifact.prompt(t) for t in artifact.tasks]).mean(dim=0), artifact.metadata)
    if kind == PARTICLES or kind is None:  # None: let the particles loader say what is wrong
        particles, metadata = load_particles(path, flag="--init")
        if particles.shape[0] == 0:  # no mean to start from (adapting from it would give a NaN loss, not a diagnosis)
            raise BmtptError(f"particles file '{path}' holds no particles (M = 0), so it has no mean: re-create it with bmtpt source")
        return InitFile(path, particles.mean(dim=0), metadata, particles)  # θ̄^S (l, d); Θ (M, l, d)
    raise BmtptError(
        f"'{path}' is a bmtpt '{kind}' file: --init takes a particles or prompts file, 'random' or retrieve:DIR"
    )


def check_init_particle(spec: str, init_file: InitFile | None, particle: int | None) -> None:
    """Refuse `--init-particle i` unless `--init` is a particles file with a particle i (0 ≤ i < M)."""
    if particle is None:
        return
    if init_file is None or init_file.particles is None:
        what = "has no particles" if init_file is None else "is a prompts file"
        raise BmtptError(
            f"--init-particle picks one particle of a particles file, but --init '{spec}' {what}: "
            "pass --init PARTICLES.safetensors or drop --init-particle"
        )
    count = init_file.particles.shape[0]
    if not 0 <= particle < count:
        raise BmtptError(
            f"--init-particle {particle} is out of range: '{init_file.path}' holds M = {count} particles, "
            f"numbered 0 to {count - 1}"
        )


def resolve_init(
    spec: str,
    runner: FrozenT5Runner,
    *,
    prompt_length: int | None,
    seed: int,
    required_length: int | None = None,
    vocab_top_k: int = 5000,
    init_file: InitFile | None = None,
    particle: int | None = None,
    target: RetrievalTarget | None = None,
    progress: Progress = SILENT,
) -> TargetInit:
    """Build the initial target prompt from `--init` for this runner's model (SPEC §3).

    A file (already read by `read_init_file`, or read here) must fit the model's width and, when
    `required_length` is given (the user asked for a length explicitly), that length; its mean is
    also the prior mean, or with `particle` = i (a particles file only) particle i is both.
    `random` draws `prompt_length` (default 100) vocabulary embeddings: vanilla prompt tuning, with
    no prior. `retrieve:DIR` needs `target`: the prompt in DIR most similar to the target's task
    embedding (`adapter.retrieve`) is the init and the prior mean, the choice in `details`.
    """
    if particle is not None and (spec == RANDOM_INIT or is_retrieval(spec)):
        check_init_particle(spec, None, particle)
    if is_retrieval(spec):
        if target is None:
            raise BmtptError(
                "--init retrieve:DIR needs the target task's examples for its task embedding, which this command does "
                "not pass: use it with bmtpt adapt (one target task) or bmtpt fewshot"
            )
        found = retrieve(
            spec, runner, target, seed=seed, required_length=required_length, vocab_top_k=vocab_top_k, progress=progress,
        )
        chosen = found.chosen
        details = found.details(spec[len(RETRIEVE_PREFIX):], target, seed)
        model = chosen.metadata.get("bmtpt.model")
        return TargetInit(chosen.prompt, chosen.prompt, spec, file_sha256(chosen.path), model, details)
    if spec == RANDOM_INIT:
        generator = torch.Generator().manual_seed(seed)
        length = prompt_length or DEFAULT_PROMPT_LENGTH
        prompt = sample_vocab_prompts(
            runner.vocab_embeddings, count=1, length=length,
            candidate_ids=runner.vocab_candidate_ids(vocab_top_k), generator=generator,
        )[0]
        return TargetInit(prompt, None, spec, "", None)
    init = init_file or read_init_file(spec)
    check_model_fit(init.path, init.metadata, d_model=runner.d_model, prompt_length=required_length)
    sha256, model = file_sha256(init.path), init.metadata.get("bmtpt.model")
    if particle is not None:
        check_init_particle(spec, init, particle)
        chosen = init.particles[particle].clone()  # (l, d): particle i is the init and the prior mean
        details = {"particle": particle, "num_particles": int(init.particles.shape[0])}
        return TargetInit(chosen, chosen, spec, sha256, model, details)
    return TargetInit(init.prompt, init.prompt, spec, sha256, model)
