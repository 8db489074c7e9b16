"""What a transfer method is: one object stating everything that distinguishes it (issue 21).

A method says, in one place:

- its `name` and a one-line `summary`;
- the source artifact it needs (`source`: none, a particles file, a one-particle file, a prompts
  file, or a directory of per-task prompts) and the `fewshot` flag that names it;
- how the target prompt starts (`start`: a `StartRequest` → `TargetInit`);
- its prior (`prior`: none, always, never, or as `--prior` says), decided by `prior_centre` — the
  only place in bmtpt that decides whether a run has a prior term;
- the prompt module it trains and scores (`prompt_module`: `TargetPrompts` for the prompt-tuning
  family; a module of `adapter.prompt.PromptModule`'s interface otherwise), whose
  `parameter_groups` are its trainable parameters and learning-rate groups;
- how it is saved and read back (its module's `artifact_tensors`, stored in a bmtpt prompts file
  that records `bmtpt.method`; `load`) and the export formats it supports (`export_formats`).

Methods are plain values; `methods.registry.METHODS` lists them explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bmtpt_cli.adapter.prompt import PromptModule, TargetPrompts
from bmtpt_cli.artifacts import PromptArtifact
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.init import InitFile, RetrievalTarget, TargetInit
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.progress import SILENT, Progress

# The source artifacts a method can need.
NO_SOURCE = "none"
PARTICLES_FILE = "particles"  # a particles file of `bmtpt source` (M ≥ 1)
ONE_PARTICLE_FILE = "one-particle"  # a particles file with M = 1 (`bmtpt source --particles 1`)
PROMPTS_FILE = "prompts"  # a prompts file of `bmtpt adapt` (the mean of its tasks' prompts)
TASK_PROMPTS_DIR = "task-prompts"  # a directory of `bmtpt source --per-task`
SOURCE_KINDS = (NO_SOURCE, PARTICLES_FILE, ONE_PARTICLE_FILE, PROMPTS_FILE, TASK_PROMPTS_DIR)

# The prior rules.
NO_PRIOR = "none"  # nothing to centre a prior on (a random or zero init)
ALWAYS = "always"  # the prior term whatever --prior says (bmtpt)
NEVER = "never"  # never a prior term, whatever --prior says (bmtpt-noprior: the paper's ablation)
CONFIGURED = "configured"  # as --prior / --no-prior says
PRIOR_RULES = (NO_PRIOR, ALWAYS, NEVER, CONFIGURED)

FORMATS = ("peft", "safetensors")
"""The export formats of a fixed-prompt method (`bmtpt export --format`)."""


@dataclass(frozen=True)
class StartRequest:
    """What a method's `start` may use to build the initial target prompt.

    `source`: the file or directory the method starts from (None for methods that need none);
    `prompt_length`: the length of an init made from nothing (None: `DEFAULT_PROMPT_LENGTH`);
    `required_length`: a length asked for explicitly, which a source file must match; `init_file`:
    the source file already read (`methods.init.read_init_file`); `target`: the target's task and
    examples (retrieval embeds them).
    """

    runner: FrozenT5Runner
    seed: int
    source: str | None = None
    prompt_length: int | None = None
    required_length: int | None = None
    init_file: InitFile | None = None
    target: RetrievalTarget | None = None
    target_tasks: tuple[str, ...] = ()  # the target tasks (a method leaves their own source prompts out)
    vocab_top_k: int = 5000
    progress: Progress = SILENT
    load_examples: Callable[[list[str]], dict[str, list[TextExample]]] | None = None
    # the training examples of named tasks, read with the run's data settings (spot-mixture-K trains on its sources')


def fixed_prompts(init: TargetInit, tasks: list[str], runner: FrozenT5Runner, seed: int) -> PromptModule:
    """The prompt-tuning family's module: θ_k = W ⊙ a_k b_kᵀ with W from `init.prompt` (SPEC §3)."""
    return TargetPrompts(init.prompt, tasks)


def saved_prompts(artifact: PromptArtifact, runner: FrozenT5Runner) -> PromptModule:
    """A prompts file's W and every task's a_k, b_k as the prompt-tuning family's module."""
    module = TargetPrompts(artifact.shared, artifact.tasks)
    with torch.no_grad():
        for k, task in enumerate(artifact.tasks):
            a, b = artifact.scales[task]
            module.row_scales[k].copy_(a)
            module.col_scales[k].copy_(b)
    return module


@dataclass(frozen=True)
class TransferMethod:
    """One transfer method (see the module docstring for what each field means)."""

    name: str
    summary: str
    source: str  # one of SOURCE_KINDS
    prior: str  # one of PRIOR_RULES
    start: Callable[[StartRequest], TargetInit]
    flag: str | None = None  # the `fewshot` option naming its source files (None: it needs none)
    make_source: str = ""  # how a user makes that source, for errors
    prompt_module: Callable[[TargetInit, list[str], FrozenT5Runner, int], PromptModule] = fixed_prompts  # (init, tasks, runner, seed)
    load: Callable[[PromptArtifact, FrozenT5Runner], PromptModule] = saved_prompts  # its saved prompts file → its module
    export_formats: tuple[str, ...] = FORMATS
    details: dict = field(default_factory=dict)  # JSON-able facts a report records (e.g. the particle)
    retrieves: bool = False  # its start embeds the target's training examples (one target task; retrieval settings)
    candidates: Callable[[StartRequest], list[TargetInit]] | None = None
    # a method that tunes from several starts and keeps the one best on dev (SPoT's best-of-K, oracle): its starts,
    # each a whole cell of its own; a few-shot cell keeps the candidate whose kept dev score is highest

    def __post_init__(self):
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"method {self.name}: source {self.source!r} is not one of {SOURCE_KINDS}")
        if self.prior not in PRIOR_RULES:
            raise ValueError(f"method {self.name}: prior {self.prior!r} is not one of {PRIOR_RULES}")

    @property
    def needs_source(self) -> bool:
        return self.source != NO_SOURCE

    def uses_prior(self, configured: bool) -> bool:
        """Whether this method's runs have the prior term, given `--prior` (`configured`)."""
        return self.prior == ALWAYS or (self.prior == CONFIGURED and configured)

    def prior_centre(self, init: TargetInit, configured: bool) -> torch.Tensor | None:
        """The prior mean θ̄^S of a run started at `init` (paper Eq. 6), or None for no prior term:
        the one place that decides whether a run has a prior."""
        if init.prior_mean is None or not self.uses_prior(configured):
            return None
        return init.prior_mean

    def prior_description(self, init: TargetInit, configured: bool, sigma: float) -> str:
        """The prior term a run actually uses, in words (recorded in the artifact)."""
        if init.prior_mean is None:
            if self.needs_source:
                return f"none: method {self.name} has no prior"
            return "none: the init has no source posterior (vanilla prompt tuning)"
        if not self.uses_prior(configured):
            return "none: --no-prior" if not configured else f"none: method {self.name} has no prior"
        details = init.details or {}
        if "particle" in details:
            centre = f"particle {details['particle']} of the init"
        elif details.get("method") == "retrieve":
            centre = f"the retrieved source prompt of {details['chosen']}"
        elif details.get("method") == "retrieve-average":
            centre = f"the similarity-weighted average of the retrieved source prompts of {', '.join(details['chosen'])}"
        elif details.get("method") == "retrieve-mixture":
            centre = f"the prompt trained on the mixture of {', '.join(details['mixture']['tasks'])}"
        else:
            centre = "mean of the init"
        return f"N({centre}, sigma^2 I), sigma = {sigma:g}"

    def check_source(self, where: str, init_file: InitFile | None, flag: str = "--init") -> None:
        """Refuse, in one line naming both, a source file (`where`, given by `flag`) that is not what
        this method needs."""
        if self.source in (NO_SOURCE, TASK_PROMPTS_DIR) or init_file is None:
            return
        count = None if init_file.particles is None else int(init_file.particles.shape[0])
        if count is None:
            found = "a prompts file (bmtpt adapt)"
        elif count == 1:
            found = "a one-particle file (method multitask)"
        else:
            found = f"M = {count} particles (a source posterior: method bmtpt)"
        ok = {
            PARTICLES_FILE: count is not None,
            ONE_PARTICLE_FILE: count == 1,
            PROMPTS_FILE: count is None,
        }[self.source]
        if not ok:
            raise BmtptError(f"method {self.name} needs {self.make_source}, but {flag} '{where}' holds {found}: "
                             f"give {self.make_source}, or choose the method that file is for")

