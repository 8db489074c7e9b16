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


@dataclass
class InitFile:
    """A particles or prompts file read for `--init`, before any model is loaded."""

    path: Path
    prompt: torch.Tensor  # (l, d): the particle mean, or the mean of the composed task prompts
    metadata: dict[str, str]


def read_init_file(spec: str) -> InitFile | None:
    """Read and check `--init` when it names a file (None for `random`); no model needed.

    - a particles file: θ̄^S, the mean of the M particles;
    - a prompts file: the mean of its tasks' composed prompts W ⊙ a_k b_kᵀ (one task: that prompt).
    """
    if spec == RANDOM_INIT:
        return None
    path = Path(spec)
    if not path.is_file():
        raise BmtptError(f"init file '{path}' not found: run `bmtpt source` first, or pass --init random or an existing file")
    kind = read_kind(path)
    if kind == PROMPTS:
        artifact = load_prompts(path, flag="--init")
        return InitFile(path, torch.stack([artifact.prompt(t) for t in artifact.tasks]).mean(dim=0), artifact.metadata)
    if kind == PARTICLES or kind is None:  # None: let the particles loader say what is wrong
        particles, metadata = load_particles(path, flag="--init")
        return InitFile(path, particles.mean(dim=0), metadata)  # θ̄^S, (l, d)
    raise BmtptError(f"'{path}' is a bmtpt '{kind}' file: --init takes a particles or prompts file, or 'random'")


def resolve_init(
    spec: str,
    runner: FrozenT5Runner,
    *,
    prompt_length: int | None,
    seed: int,
    required_length: int | None = None,
    vocab_top_k: int = 5000,
    init_file: InitFile | None = None,
) -> TargetInit:
    """Build the initial target prompt from `--init` for this runner's model.

    A file (already read by `read_init_file`, or read here) must fit the model's width and, when
    `required_length` is given (the user asked for a length explicitly), that length; its mean is
    also the prior mean. `random` draws `prompt_length` (default 100) vocabulary embeddings:
    vanilla prompt tuning, with no prior.
    """
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
    return TargetInit(init.prompt, init.prompt, spec, file_sha256(init.path), init.metadata.get("bmtpt.model"))
