"""What the benchmarks measure: model shapes, runners, token batches and the SHIPPED source step.

* `SourceStep` is one step of `bmtpt source` as the package runs it: `start_source` builds the
  particles, AdamW and the schedule from a `SourceConfig` (the declared defaults of `bmtpt source`
  plus the benchmark's shape), and every call is one real `source_update` — `svgd_step` (tokenising
  the step's examples, forward, backward, reduce, SVGD), the optimizer and schedule, the finiteness
  checks and the step's record. Nothing is wrapped, replaced or copied: a change of the training
  step changes what is measured. Per-part times come from the step's own
  `torch.profiler.record_function` ranges (`SourceStep.profile`).
* Its examples are one per "task", so `train_source` on `SourceStep.examples_by_task` with
  `examples_per_task = 1` draws exactly this batch every step (the test checks the two paths give
  bit-identical particles).
* `BarePass` is the deliberately non-bmtpt floor: frozen-T5 forward + backward on the SAME token
  batch (`SourceStep.batch`, encoded once by `runner.encode` from the step's examples).
* `adapt_step` is one step of `bmtpt adapt` as the package runs it (`_loss_and_gradients` + AdamW)
  for any prompt module, on a fixed batch.
* `SvgdAlone` times the shipped `svgd_step`'s `bmtpt.svgd` range at particle shapes whose model is
  not built here (t5-base), with a synthetic quadratic likelihood in place of the LM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import harness  # noqa: F401  (offline environment and the repository on sys.path, before bmtpt is imported)
import torch
from harness import profile_ranges

# ============================================================================ model shapes
T5_COMMON_KW = dict(vocab_size=32128, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
MODEL_SHAPES = {
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6),
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12),
}
T5_SMALL_KW = {**T5_COMMON_KW, **MODEL_SHAPES["t5-small"]}


def build_model(kind: str, *, seed: int = 0, tokenizer=None):
    """`(model, tokenizer)`, frozen and in eval mode. `tiny`: bmtpt's own (`load_frozen_t5("tiny")`);
    `t5-small` / `t5-base`: that shape with random weights and ByT5's byte tokenizer (ids < 384, valid for
    the 32,128-row vocabulary) unless another `tokenizer` is given."""
    from bmtpt_cli.runner.model import load_frozen_t5

    if kind == "tiny":
        return load_frozen_t5("tiny")
    if kind in MODEL_SHAPES:
        from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = T5ForConditionalGeneration(T5Config(**T5_COMMON_KW, **MODEL_SHAPES[kind]))
        model.requires_grad_(False)
        model.eval()
        return model, tokenizer if tokenizer is not None else ByT5Tokenizer()
    raise ValueError(f"unknown model kind {kind!r}")


def build_runner(kind: str, *, tokenizer=None, max_source_length: int = 256, max_target_length: int = 16):
    """The shipped `FrozenT5Runner` over `build_model(kind)` (float32, no autocast)."""
    from bmtpt_cli.runner.runner import FrozenT5Runner

    model, tokenizer = build_model(kind, tokenizer=tokenizer)
    return FrozenT5Runner(model, tokenizer, max_source_length=max_source_length, max_target_length=max_target_length)


# ============================================================================ batches
@dataclass(frozen=True)
class StepShape:
    """One SVGD source-step shape: M particles of l vectors, B examples of n source / t target tokens."""

    model: str
    prompt_length: int  # l
    particles: int  # M
    batch: int  # B
    source_len: int  # n
    target_len: int  # t

    def label(self) -> str:
        return (
            f"{self.model}: l={self.prompt_length}, M={self.particles}, B={self.batch}, "
            f"n={self.source_len}, t={self.target_len} (M·B={self.particles * self.batch} sequences of "
            f"{self.prompt_length + self.source_len} encoder tokens)"
        )


def text_examples(count: int, source_len: int, target_len: int, *, seed: int = 0):
    """`count` `TextExample`s of random lowercase letters that a byte tokenizer (ByT5: the tiny model's and
    the benchmarks' t5-small one) turns into exactly `source_len` source and `target_len` target ids,
    </s> included — so a batch of them has no padding."""
    from bmtpt_cli.data.task import TextExample

    if source_len < 2 or target_len < 2:
        raise ValueError("source_len and target_len count </s>: both must be at least 2")
    g = torch.Generator().manual_seed(seed)

    def text(tokens: int) -> str:
        return "".join(chr(97 + int(c)) for c in torch.randint(26, (tokens - 1,), generator=g))

    return [TextExample(source=text(source_len), target=text(target_len), label=None) for _ in range(count)]


def encode_examples(runner, examples):
    """The `EncodedBatch` the shipped step builds from these examples (its `bmtpt.encode` range)."""
    return runner.encode([e.source for e in examples], [e.target for e in examples])


def shape_batch(runner, shape: StepShape, *, seed: int = 0):
    """`runner.encode` of `text_examples` of this shape: `(B, n)` source and `(B, t)` target ids."""
    batch = encode_examples(runner, text_examples(shape.batch, shape.source_len, shape.target_len, seed=seed))
    _check_shape(batch, shape)
    return batch


def _check_shape(batch, shape: StepShape) -> None:
    got = (tuple(batch.input_ids.shape), tuple(batch.labels.shape))
    want = ((shape.batch, shape.source_len), (shape.batch, shape.target_len))
    if got != want:
        raise ValueError(f"{shape.label()}: the tokenizer made source/target ids of shape {got}, not {want} "
                         "(text_examples assume a byte tokenizer and max lengths that do not truncate)")


def sample_particles(runner, count: int, length: int, *, seed: int = 0) -> torch.Tensor:
    """`count` prompts of `length` vocabulary embeddings (the shipped `sample_vocab_prompts`)."""
    from bmtpt_cli.runner.prompts import sample_vocab_prompts

    return sample_vocab_prompts(
        runner.vocab_embeddings, count=count, length=length, candidate_ids=runner.vocab_candidate_ids(5000),
        generator=torch.Generator().manual_seed(seed),
    )


def demo_text_batch(per_task: int = 6):
    """A real text batch: `per_task` training examples from each of the 5 demo tasks (6 → 30)."""
    from bmtpt_cli.data.demo import DEMO_TASKS

    examples = []
    for task in DEMO_TASKS.values():
        examples.extend(task.examples("train")[:per_task])
    return examples


# ============================================================================ the shipped source step
COMPONENTS = ("encode", "forward", "backward", "reduce", "svgd", "optimizer")
"""The `bmtpt.<name>` `record_function` ranges of `svgd_step` and `source_update`, in step order."""


def source_config(*, particles: int, prompt_length: int, steps: int = 100_000, examples_per_task: int = 1,
                  seed: int = 0, **overrides):
    """A `SourceConfig` at `bmtpt source`'s declared defaults (learning rate, weight decay, warm-up, damping,
    bandwidth, ...: `config_summary` says which) with the benchmark's shape; every task every step."""
    from bmtpt_cli.settings import build, defaults
    from bmtpt_cli.source.svgd import SourceConfig

    return build(SourceConfig, defaults("source"), particles=particles, prompt_length=prompt_length, steps=steps,
                 examples_per_task=examples_per_task, sample_tasks=None, seed=seed, **overrides)


def config_summary(config) -> str:
    """The optimiser and method settings of a `SourceConfig`, for a report's notes."""
    damping = f"λ = {config.damping}" if config.damping is not None else f"default λ (c = {config.damping_c})"
    bandwidth = f"h = {config.bandwidth}" if config.bandwidth is not None else "median bandwidth"
    return (f"AdamW lr {config.lr:g}, weight decay {config.weight_decay:g}, {config.warmup_steps:,} warm-up steps of "
            f"{config.steps:,}, {damping}, {bandwidth}, likelihood scale {config.likelihood_scale:g}")


class SourceStep:
    """One shipped source step per call: `bmtpt_cli.source.svgd.source_update` on a fixed batch.

    Built by the shipped `start_source(runner, config)` (particles drawn from the vocabulary
    embeddings, AdamW, linear schedule over `config.steps`); each call runs `source_update(runner,
    state, examples, config, step=k)` — tokenising the examples (`runner.encode`), the batched
    forward and backward, the data-parallel reduce (a no-op here), the SVGD update, AdamW + schedule,
    the finiteness checks and the `StepRecord` (mean pairwise distance, `.item()`). It is the loop
    body of `train_source` minus drawing the batch (`source_batch`) and the log/checkpoint I/O of
    `TrainingLoop` (none without files).
    """

    def __init__(self, runner, examples, *, particles: int, prompt_length: int, model: str = "?", seed: int = 0,
                 steps: int = 100_000, **overrides):
        from bmtpt_cli.source.svgd import start_source

        self.runner = runner
        self.examples = list(examples)
        self.examples_by_task = {f"task{i:03d}": [e] for i, e in enumerate(self.examples)}
        self.config = source_config(particles=particles, prompt_length=prompt_length, steps=steps, seed=seed,
                                    **overrides)
        self.state, self.generator = start_source(runner, self.config)
        self.batch = encode_examples(runner, self.examples)  # what each step's bmtpt.encode builds again
        self.shape = StepShape(model, prompt_length, particles, len(self.examples), self.batch.input_ids.shape[1],
                               self.batch.labels.shape[1])
        self.step = 0
        self.last = None

    @classmethod
    def for_shape(cls, runner, shape: StepShape, *, seed: int = 0, **kw) -> "SourceStep":
        """A step on `text_examples` of this shape (no padding: exactly B×n source, B×t target ids)."""
        examples = text_examples(shape.batch, shape.source_len, shape.target_len, seed=seed)
        step = cls(runner, examples, particles=shape.particles, prompt_length=shape.prompt_length,
                   model=shape.model, seed=seed, **kw)
        _check_shape(step.batch, shape)
        return step

    @property
    def particles(self) -> torch.nn.Parameter:
        return self.state.particles  # (M, l, d)

    @property
    def damping(self) -> float:
        return self.state.damping

    def __call__(self):
        """One `source_update`; returns its `StepRecord`."""
        from bmtpt_cli.source.svgd import source_update

        self.step += 1
        self.last = source_update(self.runner, self.state, self.examples, self.config, step=self.step)
        return self.last

    def profile(self, steps: int = 1, *, alongside: dict[str, Callable[[], object]] | None = None) -> dict[str, float]:
        """Per-step seconds of each part, from a `torch.profiler` run over `steps` real steps (round-robin
        with the functions in `alongside`, e.g. the bare pass, whose `bench.<name>` times are added)."""
        ranges = profile_ranges({"source_update": self, **(alongside or {})}, calls=steps)
        parts = self.breakdown(ranges)
        for name in alongside or {}:
            parts[name] = ranges.get(f"bench.{name}", float("nan"))
        return parts

    def wall_clock_split(self, steps: int) -> list[dict[str, float]]:
        """Per step, unprofiled: the wall-clock seconds of each `bmtpt.*` phase (`runtime.profiling.
        wall_clock_phases`), `total` (the whole `source_update` call) and `rest` (total minus the phases)."""
        from bmtpt_cli.runtime.profiling import wall_clock_phases

        rows = []
        for _ in range(steps):
            with wall_clock_phases() as phases:
                started = time.perf_counter()
                self()
                total = time.perf_counter() - started
            row = {name.removeprefix("bmtpt."): seconds for name, seconds in phases.items()}
            rows.append({**row, "rest": total - sum(row.values()), "total": total})
        return rows

    @staticmethod
    def breakdown(ranges: dict[str, float], key: str = "bench.source_update") -> dict[str, float]:
        """`profile_ranges` output → {component: seconds per step} for `COMPONENTS`, plus `total` (the whole
        `source_update` call) and `rest` (total minus the ranges: finiteness checks, the StepRecord)."""
        parts = {name: ranges.get(f"bmtpt.{name}", 0.0) for name in COMPONENTS}
        total = ranges[key]
        parts["rest"] = total - sum(parts.values())
        parts["total"] = total
        return parts


class BarePass:
    """The floor: frozen-T5 forward + backward on the same M·B sequences, nothing else (not bmtpt code).

    Same token batch as the step (`step.batch`, encoded once from the step's examples), same
    particles: `inputs_embeds` (M·B, l+n, d) = concat(leaf prompt (M·B, l, d) with requires_grad,
    token embeddings computed once up front); cross-entropy (mean); backward into the leaf prompt.
    """

    def __init__(self, step: SourceStep):
        runner, batch = step.runner, step.batch
        m, b = step.config.particles, len(batch)
        length = step.config.prompt_length
        self.model = runner.model
        with torch.no_grad():
            ids = batch.input_ids.repeat(m, 1)
            self.token_embeds = self.model.get_input_embeddings()(ids)  # (M·B, n, d)
        self.prompt = (
            step.particles.detach().unsqueeze(1).expand(-1, b, -1, -1).reshape(m * b, length, -1)
            .clone().requires_grad_(True)
        )  # leaf (M·B, l, d)
        mask = batch.attention_mask.repeat(m, 1)
        self.mask = torch.cat([mask.new_ones(m * b, length), mask], dim=1)  # (M·B, l+n)
        self.labels = batch.labels.repeat(m, 1)  # (M·B, t)
        self.decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=self.labels)

    def __call__(self) -> None:
        inputs_embeds = torch.cat([self.prompt, self.token_embeds], dim=1)
        logits = self.model(inputs_embeds=inputs_embeds, attention_mask=self.mask,
                            decoder_input_ids=self.decoder_input_ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.labels.reshape(-1))
        loss.backward()
        self.prompt.grad = None


# ============================================================================ the SVGD update alone
class _QuadraticLikelihood:
    """Stands in for the LM in `svgd_step` when only its `bmtpt.svgd` range is read: one example of one
    token, loss ½‖θ_j‖² per particle. Nothing it does runs inside that range, which is the shipped SVGD
    code; it only has to answer the runner calls `svgd_step` makes before it (`encode`,
    `particle_loss_sums`)."""

    def encode(self, sources, targets=None):
        from bmtpt_cli.runner.runner import EncodedBatch

        ids = torch.ones(1, 1, dtype=torch.long)
        return EncodedBatch(ids, ids, ids.clone())

    def pass_plan(self, particles, batch, prompt_length):  # one pass, as the shipped step's unchunked path
        from bmtpt_cli.runner.plan import PassPlan

        return PassPlan(particles, len(batch), particles, len(batch), "stand-in")

    def particle_loss_sums(self, particles, batch, **options):  # options of the runner's (e.g. per_example): moot here
        return 0.5 * particles.square().flatten(1).sum(dim=1)  # (M,)


class SvgdAlone:
    """The SVGD update of the shipped `svgd_step` (scores, `rbf_kernel` once, `svgd_direction` with that
    kernel, −φ into `.grad`) on (M, l, d) particles without a model: `profile(calls)` → seconds per call
    of its `bmtpt.svgd` range."""

    def __init__(self, particles: int, prompt_length: int, d_model: int, *, seed: int = 0):
        from bmtpt_cli.data.task import TextExample
        from bmtpt_cli.source.kernel import damping_lambda

        g = torch.Generator().manual_seed(seed)
        self.particles = torch.nn.Parameter(torch.randn(particles, prompt_length, d_model, generator=g) * 0.5)
        self.damping = damping_lambda(particles, prompt_length * d_model)
        self._likelihood = _QuadraticLikelihood()
        self._examples = [TextExample(source="", target="", label=None)]

    def __call__(self):
        from bmtpt_cli.source.svgd import svgd_step

        return svgd_step(self._likelihood, self.particles, self._examples, damping=self.damping,
                         likelihood_scale=1.0, bandwidth=None)

    def profile(self, calls: int = 1) -> float:
        return profile_ranges({"svgd_step": self}, calls=calls)["bmtpt.svgd"]


# ============================================================================ adaptation steps
def adapt_step(runner, module, pairs, config, prior_mean=None) -> Callable[[], None]:
    """One shipped adaptation step of `module` on the fixed `pairs` (task "task"): `adapter.train.
    _loss_and_gradients` (encode, the module's prompts, forward, backward, the prior toward `prior_mean`)
    then AdamW with the module's parameter groups, as a zero-argument function."""
    from bmtpt_cli.adapter.train import _loss_and_gradients
    from bmtpt_cli.runtime.distributed import SINGLE

    optimizer = torch.optim.AdamW(module.parameter_groups(config.lr_shared, config.lr_scales), weight_decay=config.weight_decay)

    def step():
        _loss_and_gradients(runner, module, pairs, {"task": 0}, prior_mean, config, SINGLE)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
