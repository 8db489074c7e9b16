"""Where a target prompt starts: the particle mean, another prompts file, or random vocabulary (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, check_model_fit, file_sha256, load_particles, load_prompts, read_kind
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner

RANDOM_INIT = "random"
DEFAULT_PROMPT_LENGTH = 100


@dataclass
class TargetInit:
    """The initial W `(l, d)`, the prior mean θ̄^S (None: no source posterior, no prior) and provenance."""

    prompt: torch.Tensor  # (l, d)
    prior_mean: torch.Tensor | None  # (l, d)
    source: str  # the --init value
    sha256: str  # of the init file; "" for random
    model: str | None  # the model the init was made for


def resolve_init(
    spec: str,
    runner: FrozenT5Runner,
    *,
    prompt_length: int | None,
    seed: int,
    required_length: int | None = None,
    vocab_top_k: int = 5000,
) -> TargetInit:
    """Build the initial target prompt from `--init`.

    `prompt_length` sizes a random init; an init file brings its own length, which must equal
    `required_length` when one is given (the user asked for a length explicitly).

    - a particles file: W = θ̄^S, the mean of the M particles, which is also the prior mean;
    - a prompts file: the mean of its tasks' composed prompts W ⊙ a_k b_kᵀ (one task: that prompt);
    - `random`: l embeddings of tokens drawn from the vocabulary (vanilla prompt tuning, no prior).
    """
    if spec == RANDOM_INIT:
        generator = torch.Generator().manual_seed(seed)
        length = prompt_length or DEFAULT_PROMPT_LENGTH
        prompt = sample_vocab_prompts(
            runner.vocab_embeddings, count=1, length=length, vocab_limit=runner.vocab_size,
            generator=generator, top_k=vocab_top_k,
        )[0]
        return TargetInit(prompt, None, spec, "", None)
    path = Path(spec)
    if not path.is_file():
        raise BmtptError(f"init file '{path}' not found: run `bmtpt source` first, or pass --init random or an existing file")
    kind = read_kind(path)
    if kind == PROMPTS:
        artifact = load_prompts(path, flag="--init")
        metadata = artifact.metadata
        prompt = torch.stack([artifact.prompt(task) for task in artifact.tasks]).mean(dim=0)
    elif kind == PARTICLES or kind is None:  # None: let the particles loader say what is wrong
        particles, metadata = load_particles(path, flag="--init")
        prompt = particles.mean(dim=0)  # θ̄^S, (l, d)
    else:
        raise BmtptError(f"'{path}' is a bmtpt '{kind}' file: --init takes a particles or prompts file, or 'random'")
    check_model_fit(path, metadata, d_model=runner.d_model, prompt_length=required_length)
    return TargetInit(prompt, prompt, spec, file_sha256(path), metadata.get("bmtpt.model"))
