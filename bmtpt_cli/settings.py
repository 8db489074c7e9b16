"""Settings of each command as pydantic-settings models: the one place a setting is declared.

A field here is everything about a setting: its type, bounds and default (the paper's, SPEC §2–3),
its description (the `--help` text and the comment in the preset files) and its help panel. The
command-line options are generated from these fields (`commands/options.py`), and the core's typed
configs are filled from them by name (`build`), so adding a setting is one field plus its use.

Precedence: command-line flags > `BMTPT_*` environment variables > the preset file > the defaults
below. `presets/demo.toml` shrinks them to a laptop-sized run.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, SettingsConfigDict

from bmtpt_cli.adapter import defaults as paper
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.presets import COMMAND_TABLES, PRESETS_DIR, preset_path, preset_values, read_preset
from bmtpt_cli.world import DEMO_PRESET, adopt_artifact_world, demo_exit, flag_name

# --help panels, in the order they are shown.
DATA, MODEL, METHOD, OPTIMISATION, RUN = "Data", "Model", "Method", "Optimisation", "Run control"
PANELS = (DATA, MODEL, METHOD, OPTIMISATION, RUN)


def panel(name: str) -> dict[str, str]:
    """A field's extra schema naming the `--help` panel its option is shown in."""
    return {"panel": name}


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: prompts and particles are float32, so a learning rate or scale above it is
infinite in the update (a smaller one that diverges is the divergence guard's, runtime/divergence.py)."""

SEED_MAX = 2**63 - 1
"""Seeds are 0 … 2^63 − 1 (what every generator and the checkpoint's int64 state take)."""

SIGMA_MIN = paper.SIGMA_MIN
"""The smallest prior σ: the prior term (1/2σ²)‖θ − θ̄‖² stays within float32 for any prompt the
divergence guard admits, and σ = 1e-6 already pins every prompt to the prior mean (SPEC §2, divergence guard)."""


def check_device(value: str) -> str:
    """A `--device` this machine has: auto, cpu, cuda, cuda:N, or mps where PyTorch has MPS."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
        raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
    if value == "mps":
        import torch

        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("this machine (or this PyTorch) has no MPS device: use --device cpu")
    return value


TaskList = Annotated[list[str], NoDecode]  # `a,b` on the command line and in BMTPT_TASKS, a list in TOML


def _split_tasks(value: Any) -> Any:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


PathList = Annotated[list[Path], NoDecode]  # `a,b` on the command line and in BMTPT_*, a list (or one string) in TOML
SeedList = Annotated[list[int], NoDecode]  # `--seeds`: `0,1,2`, `0-2` or a count N; a list or a number in TOML
DEV_SHOTS = 32
"""Dev examples per task that select each few-shot cell's step by default (0: the last step, as the paper)."""
CELLS_PER_PASS = 20
"""Few-shot cells adapted together by default (benchmark 9: the speed-up levels off beyond it on a CPU)."""
DEV_SHOTS_HELP = (
    "Keep each cell's best of 10 evaluations on this many validation examples per task (0: score the last step, as "
    "the paper; at high learning rates the last step of one cell is chaotic, docs/toyworld.md)."
)
CALIBRATE_HELP = (
    "Temperature scaling (Guo et al. 2017): fit one temperature T > 0 per task by minimising the NLL of "
    "softmax(label scores / T) on held-out examples, and report the calibration (ECE, NLL, Brier) both unscaled and "
    "scaled by T; accuracy and every metric are unchanged (the argmax is). Rank-scored tasks only (a generated task "
    "says T is undefined)."
)
MAX_SEEDS = 10_000
"""The most seeds one run takes (a count or a range beyond it is surely a typo)."""
SEEDS_HELP = (
    "The seeds, one meaning in every command: 0,1,2 or 0-2 (or 0-2,7) lists them; a single number N is a count, "
    "the N seeds --seed … --seed + N - 1 (for seed 3 alone: --seeds 3-3)."
)


def parse_seeds(value: Any, first: Any) -> Any:
    """`--seeds` as a list of seeds: `0,1,2` and `0-2` (and a TOML list) list them, a single number N
    (a TOML integer) is a count, the seeds `first` … `first` + N − 1; anything else is refused
    naming both forms. Bounds and repeats are checked on the list (`check_seed_list`)."""
    import re

    forms = "write --seeds 0,1,2 or 0-2 to list seeds, or N for N seeds from --seed"
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not seeds: {forms}")
    if isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value)):
        count = int(value)
        if count < 1:
            raise ValueError(f"a count of {count} seeds runs nothing: {forms} (seed 0 alone: --seeds 0-0)")
        if count > MAX_SEEDS:
            raise ValueError(f"{count} seeds is more than {MAX_SEEDS}: {forms}")
        start = first if isinstance(first, int) else 0
        return list(range(start, start + count))
    if isinstance(value, str):
        seeds: list[int] = []
        for part in value.split(","):
            match = re.fullmatch(r"\s*(\d{1,40})\s*(?:-\s*(\d{1,40})\s*)?", part)  # too large: check_seed_list says
            low, high = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (1, 0)
            if not match or high < low:
                raise ValueError(f"{part.strip()[:24]!r} is neither a seed, a range a-b with a <= b, nor a count: {forms}")
            if high - low + 1 + len(seeds) > MAX_SEEDS:
                raise ValueError(f"more than {MAX_SEEDS} seeds: {forms}")
            seeds.extend(range(low, high + 1))
        return seeds
    return value  # a TOML list: checked as a list of integers


def check_seed_list(value: list[int]) -> list[int]:
    """Every seed within 0 … 2^63 − 1 (what the generators take), and none given twice."""
    if any(not 0 <= seed <= SEED_MAX for seed in value):
        raise ValueError(f"every seed must be from 0 to {SEED_MAX} (2^63 - 1)")
    repeated = sorted({seed for seed in value if value.count(seed) > 1})
    if repeated:
        raise ValueError(f"seed(s) {', '.join(map(str, repeated))} given twice; give each seed once")
    return value


class CommonSettings(BaseSettings):
    """Settings every command shares (top-level keys of a preset)."""

    model_config = SettingsConfigDict(env_prefix="BMTPT_", extra="forbid", validate_default=True, allow_inf_nan=False)

    model: str = Field("t5-base", json_schema_extra=panel(MODEL), description="Frozen LM: a hub id (t5-base, google/flan-t5-base, …), a local directory, 'tiny' (offline random-weight test model), 'toy' (the shipped toy T5 pretrained on the toy world, docs/toyworld.md), 'toy-wide' (the same world at d 192, for cross-model transfer) or 'toy3' (the toy T5 of the third toy world, whose source families have their own input fields).")
    prompt_length: int = Field(paper.PROMPT_LENGTH, gt=0, json_schema_extra=panel(METHOD), description="Number of soft-prompt vectors l prepended to every input.")
    seed: int = Field(0, ge=0, le=SEED_MAX, json_schema_extra=panel(RUN), description="Random seed. It guarantees the same numbers on the same machine with the same --threads and the same versions (all recorded in the output's provenance); on another CPU or with another thread count, float round-off may change the results, more so at high learning rates.")
    threads: int | None = Field(None, ge=1, le=1024, json_schema_extra=panel(RUN), description="CPU threads PyTorch uses (intra- and inter-op). Unset: $OMP_NUM_THREADS if set, else 1 for the small models tiny, toy, toy-wide and toy3 (more only wait for cores), else min(CPUs available, 4); recorded in the provenance.")
    device: str = Field("auto", json_schema_extra=panel(MODEL), description="Device to run on: auto (CUDA if available), cpu, cuda, cuda:N.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)
    max_source_length: int = Field(256, gt=0, json_schema_extra=panel(DATA), description="Input tokens kept per example (longer inputs are truncated).")
    max_target_length: int = Field(128, gt=0, json_schema_extra=panel(DATA), description="Target tokens kept per example.")
    taskless: bool = Field(False, json_schema_extra=panel(DATA), description="Drop the task name from the inputs (fair zero-shot transfer).")
    label_style: Literal["words", "digits"] = Field("words", json_schema_extra=panel(DATA), description="Targets: label words (entailment, positive, …) or the baselines' digits (0, 1, 2).")
    data_dir: Path | None = Field(None, json_schema_extra=panel(DATA), description="Read task data from this folder (GLUE TSV, SuperGLUE JSONL, SQuAD JSON, generic JSONL layouts) instead of the hub.")

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            what = "a file, not a directory" if value.exists() else "no directory"
            raise ValueError(f"{what}: pass the folder that holds the task files (GLUE TSV, SuperGLUE JSONL, …)")
        return value

    force: bool = Field(False, json_schema_extra=panel(RUN), description="Overwrite existing output files (only regular files, and directories bmtpt wrote). Command line only: a preset or BMTPT_FORCE that sets it is refused.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", json_schema_extra=panel(MODEL), description="LM precision: bf16 autocast (prompts stay float32), fp32, or auto (bf16 on CUDA where supported, else fp32).")
    compile: bool = Field(False, json_schema_extra=panel(MODEL), description="torch.compile the frozen LM (slow first step, faster later ones).")
    grad_checkpointing: bool = Field(False, json_schema_extra=panel(MODEL), description="Recompute LM activations in the backward pass: less memory, more time.")
    chunk_sequences: int | None = Field(None, gt=0, json_schema_extra=panel(MODEL), description="Sequences per forward/backward pass of a training step: a source step's M·B sequences (an adaptation batch's B) go through the LM in chunks of this many, gradients accumulated (the same result to float32 round-off; lower it to cap memory). Unset: one pass on a GPU while it fits, passes whose largest activation stays within 32 MiB on a CPU; the step log records the plan.")
    eval_tokens: int | None = Field(None, gt=0, json_schema_extra=panel(MODEL), description="Padded (prompt + input) tokens per evaluation pass: examples are sorted by length and scored (rank scoring and generation) in chunks of at most this many positions. Unset: sized from the device and shapes (on a CPU: the largest activation within 32 MiB).")
    verbose: bool = Field(False, json_schema_extra=panel(RUN), description="Show what third-party libraries print: transformers' and datasets' loading bars and their known warnings (e.g. the tokenizer's 'Token indices sequence length is longer than the specified maximum'); silenced without it.")
    progress_every: float = Field(30.0, gt=0, le=86400, json_schema_extra=panel(RUN), description="When stderr is not a terminal (a batch job, a log file), a plain progress line every this many seconds.")

    _explicit: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _flags: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def origin(self, name: str) -> str:
        """Where a setting's value came from: `--flag`, `BMTPT_NAME`, `preset 'P' key K`, or `the default`."""
        return self._origins.get(name, "the default")

    def _from(self, name: str) -> str:
        """` (from ORIGIN)` for a setting not given by its flag (a preset, BMTPT_*), else nothing."""
        origin = self.origin(name)
        return "" if origin.startswith("--") else f" (from {origin})"

    def explicit(self, name: str):
        """The value of `name` if the user set it by flag or BMTPT_* variable, else None (preset/default)."""
        return getattr(self, name) if name in self._explicit else None

    def check_combination(self, flags: frozenset[str]) -> None:
        """Refuse flags given together (or alone) where they make no sense; `flags`: the options given."""

    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """What resolving changed that the user did not ask for (e.g. a scaled warm-up), one line each."""
        return list(self._notes)

    def fit_schedule(self, layer_steps: int) -> None:
        """Keep the warm-up inside the run (SPEC §2 schedule).

        A warm-up as long as the run would keep the learning rate rising to the last step. When the
        user set both `--steps` and `--warmup-steps` (flag or BMTPT_*), that is refused. Otherwise
        the warm-up came from a preset or the defaults, written for that layer's run length
        `layer_steps`: it is scaled to keep the same fraction of this run, and a note says so.
        """
        steps, warmup = self.steps, self.warmup_steps
        if warmup < steps:
            return
        if "warmup_steps" in self._explicit:
            raise BmtptError(
                f"warm-up of {warmup} steps ({self.origin('warmup_steps')}) is not shorter than the run of "
                f"{steps} steps ({self.origin('steps')}): pass --warmup-steps below {steps} (0 for none)"
            )
        scaled = min(steps - 1, warmup * steps // max(layer_steps, 1))
        self.warmup_steps = scaled
        self._origins["warmup_steps"] = f"scaled from {warmup} of {layer_steps} steps ({self.origin('warmup_steps')})"
        self._notes.append(
            f"note: warm-up of {warmup} steps is as long as the run of {steps}; using {scaled} "
            f"(the same share of the run as {warmup} of {layer_steps}); pass --warmup-steps to choose"
        )

    def _refuse_together(self, flags: frozenset[str], first: str, second: str, why: str) -> None:
        if first in flags and second in flags:
            raise BmtptError(f"{flag_name(first)} and {flag_name(second)} do not go together: {why}")


def _tracker_installed(value: str) -> str:
    from bmtpt_cli.runtime.tracking import check_installed

    return check_installed(value)


ReportTo = Annotated[Literal["none", "csv", "tensorboard", "mlflow", "wandb"], AfterValidator(_tracker_installed)]
REPORT_TO_HELP = (
    "Also log every step record and the resolved settings to: csv (<out>.csv and <out>.settings.json), tensorboard "
    "(<out>.tb/), mlflow or wandb (optional extras: pip install 'bmtpt[mlflow]'; their own environment variables "
    "apply, e.g. WANDB_MODE=offline), or none. The Hugging Face report_to names."
)


class TrainingSettings(CommonSettings):
    """Settings every training command shares."""

    steps: int = Field(..., gt=0, json_schema_extra=panel(OPTIMISATION), description="Number of optimisation steps.")
    warmup_steps: int = Field(500, ge=0, json_schema_extra=panel(OPTIMISATION), description="Steps of linear learning-rate warm-up (then linear decay to 0).")
    weight_decay: float = Field(paper.WEIGHT_DECAY, ge=0, json_schema_extra=panel(OPTIMISATION), description="AdamW weight decay of W, a and b (the baselines' 1e-5).")
    checkpoint_every: int = Field(1000, gt=0, json_schema_extra=panel(RUN), description="Save a checkpoint every N steps (and at the end).")
    resume: bool = Field(False, json_schema_extra=panel(RUN), description="Continue from the checkpoint beside --out instead of starting over.")
    report_to: ReportTo = Field("none", json_schema_extra=panel(RUN), description=REPORT_TO_HELP)
    keep_checkpoint: bool = Field(False, json_schema_extra=panel(RUN), description="Keep the final checkpoint beside --out when the run finishes, so --resume --steps N with a larger N can extend the run later (the schedule then decays to 0 at the new last step; the step log records the change).")

    @field_validator("tasks", mode="before", check_fields=False)
    @classmethod
    def _tasks_from_string(cls, value: Any) -> Any:
        return _split_tasks(value)

    def check_combination(self, flags: frozenset[str]) -> None:
        """Training commands refuse nothing beyond their own checks (see subclasses)."""


class SourceSettings(TrainingSettings):
    """`bmtpt source`: learn M particles of the source posterior with Damped SVGD (SPEC §2)."""

    tasks: TaskList = Field(["mnli", "qnli", "qqp", "sst2", "squad", "record"], min_length=1, json_schema_extra=panel(DATA), description="Source tasks, comma-separated.")
    particles: int = Field(5, gt=0, json_schema_extra=panel(METHOD), description="Number of particles M (1 = the vanilla multi-task transfer baseline).")
    steps: int = Field(100_000, gt=0, json_schema_extra=panel(OPTIMISATION), description="Number of SVGD updates (the paper: 100,000).")
    examples_per_task: int = Field(1, gt=0, json_schema_extra=panel(OPTIMISATION), description="Examples each source task contributes to a step's batch.")
    sample_tasks: int | None = Field(None, gt=0, json_schema_extra=panel(METHOD), description="Source task sampling: draw this many of the K tasks per step (unset: all).")
    lr: float = Field(0.3, gt=0, le=FLOAT32_MAX, json_schema_extra=panel(OPTIMISATION), description="AdamW learning rate for the particles.")
    weight_decay: float = Field(0.0, ge=0, json_schema_extra=panel(OPTIMISATION), description="AdamW weight decay of the particles (default 0: the source posterior has a uniform prior, which decay would turn into a Gaussian one).")
    damping: float | None = Field(None, gt=0, le=1, json_schema_extra=panel(METHOD), description="Damped-SVGD λ in (0, 1]; unset: min(1, e^-1 (c + M/(l·d))) ≈ 0.368, and 1 for a single particle (1 = plain SVGD).")
    damping_c: float = Field(1.0, gt=0, json_schema_extra=panel(METHOD), description="The constant c in the default damping λ = min(1, e^-1 (c + M/(l·d))).")
    likelihood_scale: float = Field(1.0, gt=0, le=FLOAT32_MAX, json_schema_extra=panel(METHOD), description="Scale c of the score s = -c ∇loss.")
    loss_weighting: Literal["tokens", "examples"] = Field("tokens", json_schema_extra=panel(METHOD), description="Each particle's loss L_j: tokens = the batch's token mean (the LM loss the paper and the baselines use; long targets weigh more), examples = the mean of per-example token means (every example weighs the same).")
    bandwidth: float | None = Field(None, gt=0, json_schema_extra=panel(METHOD), description="Fixed RBF kernel bandwidth h (unset: median heuristic).")
    vocab_top_k: int = Field(5000, gt=0, json_schema_extra=panel(METHOD), description="Particles start from embeddings of tokens drawn from the K most frequent.")
    per_task: bool = Field(False, json_schema_extra=panel(METHOD), description="Train one prompt per source task instead (one particle each, the same seed for every task; SPoT-style source prompts) and write --out/<task>.safetensors (default --out: source-prompts), the input of adapt --init retrieve:DIR and transfer-matrix.")
    def check_combination(self, flags: frozenset[str]) -> None:
        super().check_combination(flags)
        self._refuse_together(flags, "damping", "damping_c", "--damping-c only shapes the default λ; give one of them")
        if self.per_task:
            self._resolve_per_task()

    def _resolve_per_task(self) -> None:
        """--per-task (SPEC §3): one particle per task, every step on that task alone, `out` a directory.

        --particles > 1 or --sample-tasks given by flag or BMTPT_* is refused; a preset's or the
        default value is replaced (its origin says so); the default `out` becomes `source-prompts`.
        """
        for name, value, wanted, why in (
            ("particles", self.particles, 1, "one particle per task"),
            ("sample_tasks", self.sample_tasks, None, "each task alone"),
        ):
            if value == wanted:
                continue
            if name in self._explicit:
                fix = "pass --particles 1 or drop it" if name == "particles" else "drop it"
                raise BmtptError(f"--per-task trains {why}, but {self.origin(name)} asks for {name.replace('_', ' ')} = {value}: {fix}")
            setattr(self, name, wanted)
            self._origins[name] = f"--per-task ({why}; {self.origin(name)} gave {value})"
        if self.origin("out") == "the default":
            self.out = Path(PER_TASK_OUT)
            self._origins["out"] = "--per-task (the default directory)"

    out: Path = Field(Path("particles.safetensors"), json_schema_extra=panel(RUN), description="Where to write the particles; checkpoint (.ckpt) and step log (.log.jsonl) go beside it. With --per-task: the directory of per-task prompts (default source-prompts), each task's checkpoint and log beside its file.")


PER_TASK_OUT = "source-prompts"
"""`bmtpt source --per-task`'s output directory when --out is left at its default."""


METHOD_HELP = (
    "Transfer method: pt, multitask, bmtpt, bmtpt-noprior, bmtpt-ensemble, particle-I, spot, spot-average-K, spot-mixture-K, "
    "from-prompts or attempt (spot-best-of-K and spot-oracle: fewshot only) (README: Baselines in one "
    "code path); --init names its source file or directory. Unset: the method --init means (random → pt, a "
    "posterior → bmtpt, bmtpt-noprior with --no-prior, a one-particle file → multitask, retrieve:DIR → spot, a prompts "
    "file → from-prompts, with --init-particle I → particle-I)."
)


class AdaptHyperparameters(BaseModel):
    """Adaptation hyperparameters shared by `adapt` and the few-shot probe of `evaluate` (SPEC §3)."""

    model_config = ConfigDict(allow_inf_nan=False)

    batch_size: int = Field(paper.BATCH_SIZE, gt=0, json_schema_extra=panel(OPTIMISATION), description="Examples per adaptation step (target tasks mixed example-proportionally).")
    lr_shared: float = Field(paper.LR_SHARED, gt=0, le=FLOAT32_MAX, json_schema_extra=panel(OPTIMISATION), description="Learning rate of the shared prompt W.")
    lr_scales: float = Field(paper.LR_SCALES, gt=0, le=FLOAT32_MAX, json_schema_extra=panel(OPTIMISATION), description="Learning rate of the per-task scales a, b (with --method attempt: of the attention sub-network).")
    sigma: float = Field(paper.SIGMA, ge=SIGMA_MIN, json_schema_extra=panel(METHOD), description="Prior standard deviation σ of N(θ̄^S, σ² I).")
    prior: bool = Field(True, json_schema_extra=panel(METHOD), description="Keep the prior term (1/2σ²)‖θ - θ̄^S‖² (--no-prior: the paper's ablation).")
    rank_score: Literal["sum", "mean"] = Field("sum", json_schema_extra=panel(METHOD), description="Rank scoring picks the label with the highest sum of token log-probabilities, EOS included (its log-likelihood; favours short labels), or the highest mean (length-normalised).")
    invalid_predictions: Literal["wrong", "negative"] = Field("wrong", json_schema_extra=panel(METHOD), description="With --decode generate, binary F1 counts a prediction that is no label word as the wrong class (the baselines') or as the negative class.")
    eval_batch_size: int = Field(32, gt=0, json_schema_extra=panel(RUN), description="At most this many examples per generation pass (--eval-tokens sizes the passes; rank scoring takes at most 512 example-candidate pairs a pass).")
    mixing_cap: int | None = Field(None, gt=0, json_schema_extra=panel(DATA), description="Cap on a task's size when mixing tasks example-proportionally (unset: none).")
    retrieval_steps: int = Field(100, gt=0, json_schema_extra=panel(METHOD), description="With --init retrieve:DIR: prompt-tuning steps on the target's training examples (random init from --seed, no prior) whose prompt is the target's task embedding.")
    retrieval_measure: Literal["mean", "tokens"] = Field("mean", json_schema_extra=panel(METHOD), description="With --init retrieve:DIR: task-embedding similarity, mean = cosine of the average tokens, tokens = average token-pair cosine (SPEC §5c).")
    report_to: ReportTo = Field("none", json_schema_extra=panel(RUN), description=REPORT_TO_HELP)


class AdaptSettings(AdaptHyperparameters, TrainingSettings):
    def check_combination(self, flags: frozenset[str]) -> None:
        super().check_combination(flags)
        if "sigma" in flags and self.prior is False:
            raise BmtptError("--sigma sets the prior's width but --no-prior drops the prior: give one of them")
        resolve_method_setting(self)

    """`bmtpt adapt`: target prompts W ⊙ abᵀ from the particle mean, with the Gaussian prior (SPEC §3)."""

    tasks: TaskList = Field(["rte"], min_length=1, json_schema_extra=panel(DATA), description="Target tasks, comma-separated (several: one shared W, a and b per task).")
    prompt_length: int | None = Field(None, gt=0, json_schema_extra=panel(METHOD), description=f"Prompt length l for --init random (unset: {paper.PROMPT_LENGTH}); an init file brings its own, which a value given by flag must match.")
    init: str = Field("particles.safetensors", json_schema_extra=panel(METHOD), description="Initialisation: a particles file (the mean), a prompts file, 'random' (vanilla prompt tuning), or retrieve:DIR (the prompt in DIR, from source --per-task, whose task embedding is most similar to the target's; SPoT-style). With --method: the method's source file or directory.")
    method: str | None = Field(None, json_schema_extra=panel(METHOD), description=METHOD_HELP)
    init_particle: int | None = Field(None, ge=0, json_schema_extra=panel(METHOD), description="Start W at particle i (from 0) of the --init particles file, and centre the prior on it, instead of the particle mean.")
    steps: int = Field(30_000, gt=0, json_schema_extra=panel(OPTIMISATION), description="Number of adaptation steps.")
    eval_every: int = Field(1000, gt=0, json_schema_extra=panel(OPTIMISATION), description="Evaluate on dev every N steps and keep the best.")
    out: Path = Field(Path("prompts.safetensors"), json_schema_extra=panel(RUN), description="Where to write the target prompts; checkpoint (.ckpt) and step log (.log.jsonl) go beside it.")


def resolve_method_setting(settings) -> None:
    """`--method` against `--init` and `--prior`: a method that starts from nothing takes `--init random`
    when --init was not given; a method whose prior is fixed refuses a --prior/--no-prior that says
    otherwise. The method's name and its source are checked when the run reads the source."""
    if settings.method is None:
        return
    from bmtpt_cli.methods.base import ALWAYS, NEVER
    from bmtpt_cli.methods.registry import method_named

    method = method_named(settings.method)
    if not method.needs_source and "init" not in settings._explicit:
        settings.init = "random"
        settings._origins["init"] = f"--method {method.name} (it starts from no source file)"
    fixed = {ALWAYS: True, NEVER: False}.get(method.prior)
    if fixed is not None and "prior" in settings._explicit and settings.prior != fixed:
        other = "bmtpt-noprior" if fixed else "bmtpt"
        raise BmtptError(f"method {method.name} {'always has' if fixed else 'never has'} the prior, but "
                         f"{settings.origin('prior')} says {'--prior' if settings.prior else '--no-prior'}: drop it, "
                         f"or use --method {other}")


def refuse_selecting_on_the_scored_split(split: str, dev_shots: int) -> None:
    """Few-shot cells select their step on validation examples, so scoring the validation split would
    score on the examples that chose the step: refused, naming both ways out."""
    if split == "validation" and dev_shots:
        raise BmtptError(
            f"--split validation scores the split --dev-shots {dev_shots} selects each cell's step on: pass --dev-shots 0 "
            "(score the last step) or score the test split"
        )


def refuse_calibrating_without_dev(settings) -> None:
    """Few-shot cells fit their temperature on their dev examples: `--calibrate` with `--dev-shots 0` is refused."""
    if settings.calibrate and not settings.dev_shots:
        raise BmtptError("--calibrate needs dev examples: pass --dev-shots N")


class SeedsSetting(BaseModel):
    """`--seeds` read one way by every command that has it (`parse_seeds`): the validators only; the field,
    with its own help, stays in each command's settings."""

    @field_validator("seeds", mode="before", check_fields=False)
    @classmethod
    def _parse_seeds(cls, value: Any, info: ValidationInfo) -> Any:
        return parse_seeds(value, info.data.get("seed"))

    @field_validator("seeds", check_fields=False)
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        return check_seed_list(value)


class EvaluateSettings(AdaptHyperparameters, SeedsSetting, CommonSettings):
    """`bmtpt evaluate`: test metrics of target prompts, or the few-shot probe with --shots."""

    prompts: Path = Field(Path("prompts.safetensors"), json_schema_extra=panel(METHOD), description="Prompts file to evaluate (written by bmtpt adapt).")
    decode: Literal["rank", "generate"] = Field("rank", json_schema_extra=panel(METHOD), description="rank: score the label words; generate: greedy generation and string match.")
    split: Literal["test", "validation"] = Field("test", json_schema_extra=panel(DATA), description="Split to score.")
    out: Path | None = Field(None, json_schema_extra=panel(RUN), description="Where to write the results as JSON (unset: results.json; with --shots K: fewshot-K.json).")
    shots: int | None = Field(None, gt=0, json_schema_extra=panel(METHOD), description="Few-shot probe: adapt from --init on K training examples per task, then score.")
    init: str = Field("particles.safetensors", json_schema_extra=panel(METHOD), description="With --shots: the initialisation (particles file, prompts file, or 'random').")
    method: str | None = Field(None, json_schema_extra=panel(METHOD), description="With --shots: " + METHOD_HELP)
    tasks: TaskList = Field(["rte"], min_length=1, json_schema_extra=panel(DATA), description="With --shots: the tasks to probe, comma-separated.")
    seeds: SeedList = Field(3, min_length=1, json_schema_extra=panel(METHOD), description="With --shots: the k-shot sampling and training seeds. " + SEEDS_HELP)
    steps: int = Field(1000, gt=0, json_schema_extra=panel(OPTIMISATION), description="With --shots: adaptation steps per task and seed.")
    warmup_steps: int = Field(0, ge=0, json_schema_extra=panel(OPTIMISATION), description="With --shots: steps of linear learning-rate warm-up.")
    weight_decay: float = Field(paper.WEIGHT_DECAY, ge=0, json_schema_extra=panel(OPTIMISATION), description="With --shots: AdamW weight decay.")
    resume: bool = Field(False, json_schema_extra=panel(RUN), description="With --shots: keep the finished (task, seed) cells of an interrupted probe.")
    shot_sampling: Literal["task", "class"] = Field("task", json_schema_extra=panel(METHOD), description="With --shots: draw K examples per task (the paper's protocol) or K per class.")
    dev_shots: int = Field(DEV_SHOTS, ge=0, json_schema_extra=panel(METHOD), description="With --shots: " + DEV_SHOTS_HELP)
    cells_per_pass: int = Field(CELLS_PER_PASS, gt=0, le=MAX_SEEDS, json_schema_extra=panel(RUN), description="With --shots: cells of one task (its seeds) adapted and scored together, in shared passes of the frozen LM (1: one at a time), as bmtpt fewshot runs them. Each cell's numbers are its one-at-a-time run's to float32 round-off.")
    predictions: bool = Field(False, json_schema_extra=panel(RUN), description="Also write every example's prediction as JSON lines beside the results (<out>.predictions.jsonl: task, index, input, gold, prediction, and with rank scoring each label's score).")
    calibrate: bool = Field(False, json_schema_extra=panel(METHOD), description=CALIBRATE_HELP + " T is fitted on each task's validation split (with --shots: on each cell's --dev-shots examples).")
    plots: bool = Field(False, json_schema_extra=panel(RUN), description="Also write a reliability diagram per rank-scored task beside the results (<out>.reliability.<task>.png: accuracy per confidence bin over 15 equal-width bins, the diagonal, the examples per bin, the ECE; with --calibrate also the temperature-scaled bins).")

    @field_validator("tasks", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_tasks(value)

    def check_combination(self, flags: frozenset[str]) -> None:
        if self.shots is None:
            unused = [name for name in SHOTS_ONLY if name in flags]
            if unused:
                raise BmtptError(
                    f"{', '.join(map(flag_name, unused))} only {'applies' if len(unused) == 1 else 'apply'} to the few-shot probe: "
                    f"add --shots K, or drop {'it' if len(unused) == 1 else 'them'}"
                )
        elif "prompts" in flags:
            raise BmtptError("--prompts names prompts to score, but --shots trains new ones from --init: give one of them")
        if self.shots is not None and "predictions" in flags:
            raise BmtptError("--predictions writes the predictions of a scored prompts file, which the few-shot probe (--shots) does not score: drop one of them")
        if self.shots is not None and self.plots:
            raise BmtptError(f"--plots{self._from('plots')} draws the reliability of a scored prompts file, which the few-shot probe (--shots) does not score: drop one of them")
        if self.shots is not None:
            refuse_selecting_on_the_scored_split(self.split, self.dev_shots)
            resolve_method_setting(self)
            refuse_calibrating_without_dev(self)
        elif self.calibrate and self.split == "validation":
            raise BmtptError("--calibrate fits the temperature on the validation split, which --split validation scores: "
                             "score the test split, or drop --calibrate")

    @property
    def output(self) -> Path:
        """`--out`, or the default for the job: results.json, or fewshot-K.json for the probe."""
        return self.out or Path(f"fewshot-{self.shots}.json" if self.shots else "results.json")


SHOTS_ONLY = (
    "init", "method", "tasks", "seeds", "steps", "warmup_steps", "weight_decay", "resume", "batch_size", "lr_shared",
    "lr_scales", "sigma", "prior", "mixing_cap", "shot_sampling", "dev_shots", "retrieval_steps", "retrieval_measure",
    "report_to", "cells_per_pass",
)
"""`evaluate` options that only the few-shot probe (`--shots`) uses."""


class TransferMatrixSettings(AdaptHyperparameters, CommonSettings):
    """`bmtpt transfer-matrix`: zero-shot transfer, transfer with tuning and task similarity (SPEC §5)."""

    prompts_dir: Path = Field(Path("source-prompts"), json_schema_extra=panel(DATA), description="Directory of per-task prompts, one bmtpt prompts file per task (written by bmtpt source --per-task, or bmtpt adapt --out DIR/TASK.safetensors).")
    tasks: TaskList | None = Field(None, min_length=1, json_schema_extra=panel(DATA), description="Target tasks, comma-separated; each needs its own prompt in --prompts-dir (unset: every task there).")
    sources: TaskList | None = Field(None, min_length=1, json_schema_extra=panel(DATA), description="Source prompts, comma-separated task names in --prompts-dir (unset: every task there).")
    decode: Literal["rank", "generate"] = Field("rank", json_schema_extra=panel(METHOD), description="rank: score the label words; generate: greedy generation and string match.")
    split: Literal["test", "validation"] = Field("test", json_schema_extra=panel(DATA), description="Split the targets are scored on.")
    tune: int | None = Field(None, gt=0, json_schema_extra=panel(METHOD), description="Also transfer with tuning: adapt each target for this many steps from each source prompt and from a random init, and report the relative error reduction over random-init prompt tuning (unset: skipped).")
    weight_decay: float = Field(paper.WEIGHT_DECAY, ge=0, json_schema_extra=panel(OPTIMISATION), description="With --tune: AdamW weight decay of W, a and b.")
    neurons: bool = Field(True, json_schema_extra=panel(METHOD), description="Neuron stimulation (Su et al. 2022): compare prompts by the overlap of the feed-forward neurons each activates in the frozen LM, a transferability indicator beside the prompt similarities. On by default: it costs one forward pass of one token per prompt, far less than scoring one transfer cell (--no-neurons: skipped).")
    neuron_stack: Literal["decoder", "encoder"] = Field("decoder", json_schema_extra=panel(METHOD), description="With --neurons: the feed-forward neurons read, decoder (its first position, as Su et al.) or encoder (the probe token after the prompt).")
    neuron_windows: int = Field(3, ge=1, le=64, json_schema_extra=panel(METHOD), description="With --neurons: besides all layers, a neuron-stimulation matrix per window of this many contiguous layer windows (3: first, middle and last third; 1: all layers only; at most one per layer).")
    out: Path = Field(Path("transfer"), json_schema_extra=panel(RUN), description="Folder to write the matrices to (CSV, JSON and a heatmap PNG each), the indicators' correlations with transfer (correlations.csv, .json, .md) and their scatter plots (scatter/); an existing one is replaced only with --force.")

    @field_validator("tasks", "sources", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_tasks(value)

    def check_combination(self, flags: frozenset[str]) -> None:
        never = [name for name in ("retrieval_steps", "retrieval_measure") if name in flags]
        if never:
            raise BmtptError(
                f"{', '.join(map(flag_name, never))} only {'applies' if len(never) == 1 else 'apply'} to adapt --init "
                f"retrieve:DIR; transfer-matrix starts from each source prompt itself: drop {'it' if len(never) == 1 else 'them'}"
            )
        if not self.neurons:
            unused = [name for name in ("neuron_stack", "neuron_windows") if name in flags]
            if unused:
                raise BmtptError(
                    f"{', '.join(map(flag_name, unused))} only {'applies' if len(unused) == 1 else 'apply'} to neuron "
                    f"stimulation, which --no-neurons{self._from('neurons')} skips: drop --no-neurons, or drop "
                    f"{'it' if len(unused) == 1 else 'them'}"
                )
        if self.tune is None:
            unused = [name for name in TUNE_ONLY if name in flags]
            if unused:
                raise BmtptError(
                    f"{', '.join(map(flag_name, unused))} only {'applies' if len(unused) == 1 else 'apply'} to transfer with "
                    f"tuning: add --tune STEPS, or drop {'it' if len(unused) == 1 else 'them'}"
                )


TUNE_ONLY = ("batch_size", "lr_shared", "lr_scales", "sigma", "prior", "weight_decay", "mixing_cap", "report_to")
"""`transfer-matrix` options that only transfer with tuning (`--tune`) uses."""


class ExportSettings(CommonSettings):
    """`bmtpt export`: target prompts in the serving formats, PEFT adapters or plain tensors (SPEC §8)."""

    prompts: Path = Field(Path("prompts.safetensors"), json_schema_extra=panel(METHOD), description="Prompts file to export (written by bmtpt adapt).")
    format: Literal["peft", "safetensors"] = Field("peft", json_schema_extra=panel(METHOD), description="peft: a PEFT prompt-tuning adapter directory per task (PeftModel.from_pretrained loads it); safetensors: each task's composed prompt (l, d) as a plain tensor file.")
    tasks: TaskList | None = Field(None, min_length=1, json_schema_extra=panel(DATA), description="Tasks of the prompts file to export, comma-separated (unset: all of them).")
    multitask: bool = Field(False, json_schema_extra=panel(METHOD), description="With --format peft: one PEFT multitask prompt-tuning adapter (rank 1: the shared W, each task's a and b, chosen by task_ids) instead of one adapter per task.")
    out: Path = Field(Path("export"), json_schema_extra=panel(RUN), description="Directory to write the export into (each adapter or file with a README.md model card); an existing non-empty one is replaced only with --force.")

    @field_validator("tasks", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_tasks(value)

    command_line: ClassVar[tuple[str, ...]] = ("prompts", "format", "tasks", "multitask", "out", "model", "force", "threads")
    """The options `export` shows: it runs no model, so the other shared settings have no flag here."""

    def check_combination(self, flags: frozenset[str]) -> None:
        if self.multitask and self.format != "peft":
            raise BmtptError("--multitask builds one PEFT multitask adapter, but --format safetensors writes plain tensors: use --format peft or drop --multitask")


class FewshotSettings(AdaptHyperparameters, SeedsSetting, CommonSettings):
    """`bmtpt fewshot`: the few-shot grid methods × k × tasks × seeds, the paper's Table 2 (SPEC §4)."""

    tasks: TaskList = Field(["rte"], min_length=1, json_schema_extra=panel(DATA), description="Target tasks, comma-separated (one table column each, averaged per benchmark).")
    methods: Annotated[list[str], NoDecode] = Field(["pt", "multitask", "bmtpt", "bmtpt-noprior"], min_length=1, json_schema_extra=panel(METHOD), description="Table rows, comma-separated: pt (random init, no prior), multitask (--multitask), bmtpt (--particles mean, with the prior), bmtpt-noprior (the same, no prior), bmtpt-ensemble (one prompt from each particle of --particles, predictions averaged), particle-I (particle I of --particles), spot (retrieval from --source-prompts), spot-average-K (the similarity-weighted average of the K prompts of --source-prompts nearest to the target), spot-mixture-K (one prompt trained on the data of the K nearest source tasks mixed with the target's k shots, with the per-task prompts' recipe, then tuned), spot-best-of-K (tuned from each of the K nearest, the best on dev kept), spot-oracle (the same over every source prompt), attempt (ATTEMPT's attention over --source-prompts).")
    shots: Annotated[list[int], NoDecode] = Field([4, 16, 32], min_length=1, json_schema_extra=panel(METHOD), description="The k values, comma-separated: training examples per task (per class with --shot-sampling class); lrs × 1/3 at k = 4.")
    seeds: SeedList = Field(3, min_length=1, json_schema_extra=panel(METHOD), description="Each seed has its own k-shot subset, shared by every method, and its own random init. " + SEEDS_HELP)
    particles: PathList = Field([Path("particles.safetensors")], json_schema_extra=panel(METHOD), description="Particles files (bmtpt source), comma-separated, for the methods bmtpt, bmtpt-noprior and particle-I: several independent source posteriors (one source run per --seed) are each crossed with every seed, and the paired intervals are clustered by posterior.")
    multitask: PathList = Field([], json_schema_extra=panel(METHOD), description="One-particle files (bmtpt source --particles 1), comma-separated, for the method multitask (vanilla multi-task transfer); several: independent source runs, as for --particles.")
    source_prompts: PathList = Field([], json_schema_extra=panel(METHOD), description="Directories of per-task prompts (bmtpt source --per-task), comma-separated, for the methods spot and attempt; several: independent source runs, as for --particles.")
    baseline: str = Field("pt", json_schema_extra=panel(METHOD), description="The method every other one is compared with: the table's paired differences (method − baseline at the same seed and source posterior) with 95% intervals (when it is not in --methods: the first method).")
    solved_at: float | None = Field(None, ge=0, le=1, json_schema_extra=panel(METHOD), description="Also report the share of cells whose main metric (0–1) reaches this value, e.g. 0.9 (unset: no share).")
    prior: bool = Field(True, json_schema_extra=panel(METHOD), description="The prior term for multitask, particle-I and spot (bmtpt always keeps it, bmtpt-noprior always drops it, pt has none).")
    decode: Literal["rank", "generate"] = Field("rank", json_schema_extra=panel(METHOD), description="rank: score the label words; generate: greedy generation and string match.")
    split: Literal["test", "validation"] = Field("test", json_schema_extra=panel(DATA), description="Split every cell is scored on.")
    steps: int = Field(1000, gt=0, json_schema_extra=panel(OPTIMISATION), description="Adaptation steps per cell.")
    warmup_steps: int = Field(0, ge=0, json_schema_extra=panel(OPTIMISATION), description="Steps of linear learning-rate warm-up per cell.")
    weight_decay: float = Field(paper.WEIGHT_DECAY, ge=0, json_schema_extra=panel(OPTIMISATION), description="AdamW weight decay of W, a and b.")
    shot_sampling: Literal["task", "class"] = Field("task", json_schema_extra=panel(METHOD), description="Draw k examples per task (the paper's protocol) or k per class.")
    dev_shots: int = Field(DEV_SHOTS, ge=0, json_schema_extra=panel(METHOD), description=DEV_SHOTS_HELP)
    cells_per_pass: int = Field(CELLS_PER_PASS, gt=0, le=MAX_SEEDS, json_schema_extra=panel(RUN), description="Cells of one method, k and task (seeds and source posteriors) adapted and scored together, in shared passes of the frozen LM (1: one at a time). Each cell's numbers are its one-at-a-time run's to float32 round-off; a group's rows are written when it finishes.")
    out: Path = Field(Path("fewshot"), json_schema_extra=panel(RUN), description="Folder for results.jsonl (one row per cell), table.md, table.csv, plot.png and report.json.")
    resume: bool = Field(False, json_schema_extra=panel(RUN), description="Continue the grid in --out: cells already in its results.jsonl are not run again.")
    calibrate: bool = Field(False, json_schema_extra=panel(METHOD), description=CALIBRATE_HELP + " Each cell fits its T on its own --dev-shots examples; its row records both calibrations.")
    metric: Literal["main", "ece", "nll", "brier", "ece-scaled", "nll-scaled", "brier-scaled"] = Field("main", json_schema_extra=panel(RUN), description="What table.md, table.csv and plot.png show per cell: main (each task's main metric, points), ece (ECE × 100, points), nll (nats per example), brier (multi-class Brier score, 0–2), or with --calibrate ece-scaled, nll-scaled, brier-scaled (after temperature scaling); lower is better for all but main, and a cell without the figure (a generated task) shows as missing. The paired comparisons compare the same quantity.")

    @field_validator("tasks", "methods", "shots", "particles", "multitask", "source_prompts", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_tasks(value)

    def check_combination(self, flags: frozenset[str]) -> None:
        refuse_selecting_on_the_scored_split(self.split, self.dev_shots)
        refuse_calibrating_without_dev(self)
        if self.metric.endswith("-scaled") and not self.calibrate:
            raise BmtptError(f"--metric {self.metric}{self._from('metric')} shows temperature-scaled calibration, which "
                             f"needs --calibrate: add --calibrate, or use --metric {self.metric[:-len('-scaled')]}")
        if self.metric != "main" and self.solved_at is not None:
            raise BmtptError(f"--solved-at{self._from('solved_at')} counts cells whose main metric reaches a value, but "
                             f"--metric {self.metric} shows a calibration figure: drop one of them")
        if "baseline" in flags and self.baseline not in self.methods:
            raise BmtptError(
                f"--baseline {self.baseline} is not one of --methods ({','.join(self.methods)}): add it to --methods "
                "or choose the baseline among them"
            )
        for name in ("particles", "multitask", "source_prompts"):
            paths = [str(p) for p in getattr(self, name)]
            if len(set(paths)) != len(paths):
                raise BmtptError(f"{flag_name(name)} names a source twice ({','.join(paths)}): give each source posterior once")

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, value: list[int]) -> list[int]:
        if any(k <= 0 for k in value):
            raise ValueError("every k must be a positive number of examples")
        return value


class ProjectSettings(CommonSettings):
    """`bmtpt project`: move prompts or particles to another model through a trained projector (SPEC §5f)."""

    prompts: Path = Field(Path("prompts.safetensors"), json_schema_extra=panel(METHOD), description="The artifact to move to --model: a particles file (bmtpt source), a prompts file (bmtpt adapt) or a directory of per-task prompts (bmtpt source --per-task); the model it records is the projector's source.")
    model: str | None = Field(None, json_schema_extra=panel(MODEL), description="The target model the prompts move to (a hub id, a local directory, 'tiny', 'toy', 'toy-wide' or 'toy3'), another than the one --prompts was made with. Required, by flag, BMTPT_MODEL or the key model of a preset's project table (a preset's top-level model is the chain's own); with --projector, unset takes the projector's target.")
    objective: Literal["task", "distance"] = Field("task", json_schema_extra=panel(METHOD), description="How the projector is trained: task = on the frozen target model's token cross-entropy of --tasks, the projected prompts prepended to its inputs (Su et al. 2022's task tuning); distance = to map each prompt of --source-prompts onto the prompt of the same task in --target-prompts (mean squared distance).")
    projector: Path | None = Field(None, json_schema_extra=panel(METHOD), description="Apply this saved projector (OUT.projector.safetensors of an earlier run) instead of training one: --prompts must be of its source model, and --model, if given, its target.")
    tasks: TaskList | None = Field(None, min_length=1, json_schema_extra=panel(DATA), description="With --objective task: the tasks whose loss trains the projector, comma-separated (unset: the tasks of --prompts). Per-task prompts: each task projects its own prompt; a particles file: every particle serves every task.")
    source_prompts: Path | None = Field(None, json_schema_extra=panel(DATA), description="With --objective distance: per-task prompts made on the model of --prompts (bmtpt source --per-task).")
    target_prompts: Path | None = Field(None, json_schema_extra=panel(DATA), description="With --objective distance: per-task prompts made on --model; the tasks both directories hold are the training pairs.")
    hidden: int = Field(768, gt=0, json_schema_extra=panel(METHOD), description="Hidden units h of the projector: Linear(l·d_src → h), the activation, Linear(h → l·d_tgt), LayerNorm over d_tgt.")
    activation: Literal["tanh", "leaky-relu"] = Field("tanh", json_schema_extra=panel(METHOD), description="The projector's activation between its two linear layers (tanh: the paper's).")
    steps: int = Field(1000, gt=0, json_schema_extra=panel(OPTIMISATION), description="Projector training steps.")
    batch_size: int = Field(paper.BATCH_SIZE, gt=0, json_schema_extra=panel(OPTIMISATION), description="With --objective task: examples per step (the training tasks mixed example-proportionally), each scored under every projected prompt that serves its task (a particles file: M sequences per example).")
    lr: float = Field(0.005, gt=0, le=FLOAT32_MAX, json_schema_extra=panel(OPTIMISATION), description="AdamW learning rate of the projector, constant (the reference's 0.005; weight decay 0.01).")
    checkpoint_every: int = Field(1000, gt=0, json_schema_extra=panel(RUN), description="Save a checkpoint every N steps (and at the end).")
    resume: bool = Field(False, json_schema_extra=panel(RUN), description="Continue training the projector from its checkpoint (OUT.projector.safetensors.ckpt) instead of starting over.")
    report_to: ReportTo = Field("none", json_schema_extra=panel(RUN), description=REPORT_TO_HELP + " Here <out> is the projector, OUT.projector.safetensors.")
    out: Path | None = Field(None, json_schema_extra=panel(RUN), description="Where to write the projected artifact: a file for a particles or one-task prompts file (unset: projected.safetensors), a directory of per-task prompts files for a per-task directory or a multi-task prompts file (unset: projected-prompts). A trained projector goes beside it as OUT.projector.safetensors, with its checkpoint and step log.")

    command_line: ClassVar[tuple[str, ...]] = (
        "prompts", "model", "objective", "projector", "tasks", "source_prompts", "target_prompts", "hidden", "activation",
        "steps", "batch_size", "lr", "seed", "checkpoint_every", "resume", "report_to", "out", "force", "threads", "device",
        "precision", "compile", "grad_checkpointing", "chunk_sequences", "taskless", "label_style", "max_source_length",
        "max_target_length", "data_dir", "verbose", "progress_every",
    )
    """The options `project` shows: the prompt length is the artifact's, and it evaluates nothing."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_tasks(value)

    def check_combination(self, flags: frozenset[str]) -> None:
        if self.projector is not None:
            training = [name for name in PROJECT_TRAINING if name in flags]
            if training:
                raise BmtptError(
                    f"{', '.join(map(flag_name, training))} {'trains' if len(training) == 1 else 'train'} a projector, but "
                    "--projector applies a saved one: drop --projector to train, or drop "
                    f"{'it' if len(training) == 1 else 'them'}"
                )
            return
        if self.objective == "distance":
            unused = [name for name in ("tasks", "batch_size") if name in flags]
            if unused:
                raise BmtptError(
                    f"{', '.join(map(flag_name, unused))} only {'applies' if len(unused) == 1 else 'apply'} to --objective task; "
                    f"--objective distance{self._from('objective')} trains on the prompt pairs: drop {'it' if len(unused) == 1 else 'them'}"
                )
            missing = [name for name in ("source_prompts", "target_prompts") if getattr(self, name) is None]
            if missing:
                raise BmtptError(
                    f"--objective distance{self._from('objective')} pairs the two models' per-task prompts of the same tasks: "
                    f"pass {' and '.join(flag_name(name) + ' DIR' for name in missing)}"
                )
        else:
            unused = [name for name in ("source_prompts", "target_prompts") if getattr(self, name) is not None]
            if unused:
                raise BmtptError(
                    f"{', '.join(map(flag_name, unused))} only {'applies' if len(unused) == 1 else 'apply'} to --objective "
                    f"distance: add --objective distance, or drop {'it' if len(unused) == 1 else 'them'}"
                )

    @property
    def target_named(self) -> bool:
        """Whether the user named the target model: by flag, BMTPT_MODEL or a preset's [project] table
        (a preset's top-level model is the chain's, usually the source's)."""
        return "model" in self._explicit or self.origin("model").endswith("[project].model")


PROJECT_TRAINING = (
    "objective", "tasks", "source_prompts", "target_prompts", "hidden", "activation", "steps", "batch_size", "lr",
    "checkpoint_every", "resume", "report_to",
)
"""`project` options that train a projector, which `--projector` (apply a saved one) refuses."""


SETTINGS_BY_COMMAND: dict[str, type[CommonSettings]] = {
    "source": SourceSettings,
    "adapt": AdaptSettings,
    "evaluate": EvaluateSettings,
    "transfer-matrix": TransferMatrixSettings,
    "export": ExportSettings,
    "fewshot": FewshotSettings,
    "project": ProjectSettings,
}
assert set(SETTINGS_BY_COMMAND) == set(COMMAND_TABLES)


def help_for(settings_cls: type[BaseModel], name: str) -> str:
    """A field's description, used as its `--help` text."""
    return settings_cls.model_fields[name].description or ""


def resolve_settings(command: str, preset: str | None, flags: dict[str, Any], *, not_applied: str | None = None) -> CommonSettings:
    """Resolve a command's settings: flags > BMTPT_* environment > preset (default `$BMTPT_PRESET`, else `demo`) > defaults.

    `flags` holds only the options given on the command line. Unknown keys and wrong types in any
    layer are reported in one line naming the key, where it came from, and what was expected.
    The demo preset applies to the demo's toy world only: a run outside it is resolved again without
    it (`not_applied` says why, `world.demo_exit`). The world of an artifact the run reads (model, prompt
    length, input format) comes before the preset (`world.adopt_artifact_world`).
    """
    settings_cls = SETTINGS_BY_COMMAND[command]
    path = preset_path(preset)
    data = read_preset(path)
    _check_preset_keys(path, data)
    values, origin = preset_values(data, command)
    skipped = origin if not_applied else {}
    if not_applied:
        values, origin = {}, {}

    class Resolved(settings_cls):  # the preset sits between the environment and the defaults
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
            return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=values)

    try:
        settings = Resolved(**flags)
    except ValidationError as exc:
        raise BmtptError(_describe(exc, flags, origin, path)) from None
    env = {name for name in settings_cls.model_fields if f"BMTPT_{name.upper()}" in os.environ}
    settings._explicit = frozenset(flags) | env
    settings._flags = frozenset(flags)
    settings._origins = {name: f"preset '{path.stem}' key {key}" for name, key in origin.items()}
    settings._origins |= {name: f"default (demo preset not applied: {not_applied})" for name in skipped}
    settings._origins |= {name: f"BMTPT_{name.upper()}" for name in env}
    settings._origins |= {name: flag_name(name) for name in flags}
    if settings.force and "force" not in flags:  # a preset, BMTPT_FORCE or a saved configuration may not overwrite
        raise BmtptError(
            f"force = true from {settings.origin('force')} is refused: --force counts only when typed on the command "
            "line; remove it from there (and pass --force to overwrite)"
        )
    if not_applied is None and path.resolve() == (PRESETS_DIR / f"{DEMO_PRESET}.toml").resolve():
        reason = demo_exit(command, settings)
        if reason:
            return resolve_settings(command, preset, flags, not_applied=reason)
    adopt_artifact_world(command, settings)
    if "warmup_steps" in settings_cls.model_fields and (command != "evaluate" or settings.shots):
        warmup_layer = settings.origin("warmup_steps")
        layer_steps = values.get("steps") if warmup_layer.startswith("preset") else None
        settings.fit_schedule(layer_steps or settings_cls.model_fields["steps"].default)
    settings.check_combination(settings._flags)
    return settings


def build(config_cls: type, settings: BaseModel, /, **overrides: Any):
    """A core config dataclass filled from settings by field name (SPEC §1–4 configs).

    A field whose type is itself a dataclass is built the same way, from the same settings, so a
    job config nests the runner, data and method configs. `overrides` take precedence at every
    level (e.g. a derived value such as `required_length`, or `eval_every=None` for the probe).
    """
    hints = typing.get_type_hints(config_cls)
    values = {}
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        if field.name in overrides:
            values[field.name] = overrides[field.name]
        elif dataclasses.is_dataclass(kind):
            values[field.name] = build(kind, settings, **overrides)
        elif field.name in type(settings).model_fields:
            values[field.name] = getattr(settings, field.name)
        else:
            raise TypeError(f"{config_cls.__name__}.{field.name} is not a setting of {type(settings).__name__}: pass it as an override")
    return config_cls(**values)


def defaults(command: str) -> CommonSettings:
    """A command's settings at their declared defaults (no preset, no environment): for library use."""
    return SETTINGS_BY_COMMAND[command].model_construct()


def _check_preset_keys(path: Path, data: dict[str, Any]) -> None:
    common = set(CommonSettings.model_fields)
    for key, value in data.items():
        if isinstance(value, dict):
            allowed = set(SETTINGS_BY_COMMAND[key].model_fields)
            for sub in value:
                if sub not in allowed:
                    raise BmtptError(f"preset '{path}' has an unknown key [{key}].{sub}: see `bmtpt {key} --help` for the keys")
        elif key not in common:
            raise BmtptError(
                f"preset '{path}' has an unknown top-level key '{key}': top-level keys are {', '.join(sorted(common))}; "
                f"command keys go under {', '.join(f'[{name}]' for name in SETTINGS_BY_COMMAND)}"
            )


def _describe(exc: ValidationError, flags: dict[str, Any], origin: dict[str, str], path: Path) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else "?"
    if key in flags:
        where = f"--{key.replace('_', '-')}"
    elif f"BMTPT_{key.upper()}" in os.environ:
        where = f"environment variable BMTPT_{key.upper()}"
    elif key in origin:
        where = f"preset '{path}' key {origin[key]}"
    else:
        where = f"'{key}'"
    value = error.get("input")
    message = error["msg"]
    if (error.get("ctx") or {}).get("le") == FLOAT32_MAX:  # pydantic prints it with all 39 digits
        message = "Input should be at most 3.4e+38, the largest float32 (the prompts' dtype)"
    return f"invalid {where} = {value!r}: {message}"
