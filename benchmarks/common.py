"""Shared helpers of the bmtpt benchmarks: machine description, timing, models, batches, reports.

Conventions every benchmark follows (the machines here are shared and noisy):

* Nothing is downloaded: `HF_HUB_OFFLINE=1` is set before `transformers` is imported, and every
  model is built from a `T5Config` with random weights (the cost of a pass does not depend on them).
* Figures are RATIOS measured within one run. Competing variants are timed *interleaved*
  (round-robin, the order rotating every round) after warm-up, and a ratio is the median over
  rounds of the per-round ratio, so slow phases of the machine hit both sides alike.
* Each benchmark writes one markdown fragment `docs/benchmarks/NN_name.md`; `run_all.py`
  concatenates every fragment in that folder, sorted by name, into `docs/benchmarks.md`, so later
  benchmarks (data-parallel, GPU, ...) only need to drop their own fragment there.
  Raw numbers also go to `benchmarks/results/<name>.json`.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_x.py` from anywhere
    sys.path.insert(0, str(ROOT))

FRAGMENTS_DIR = ROOT / "docs" / "benchmarks"
RESULTS_DIR = ROOT / "benchmarks" / "results"
DOC_PATH = ROOT / "docs" / "benchmarks.md"


# ============================================================================ machine
@dataclass
class Machine:
    """Where a figure was measured."""

    cpu_model: str
    logical_cores: int
    usable_cores: int
    torch_version: str
    transformers_version: str
    python_version: str
    torch_threads: int
    interop_threads: int
    platform: str
    load_average: str

    @classmethod
    def detect(cls) -> "Machine":
        cpu_model = platform.processor() or "unknown"
        try:
            text = Path("/proc/cpuinfo").read_text()
            found = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.M)
            if found:
                cpu_model = found.group(1).strip()
        except OSError:
            pass
        try:
            import transformers

            tf_version = transformers.__version__
        except ImportError:  # pragma: no cover
            tf_version = "not installed"
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        except OSError:  # pragma: no cover
            load = "n/a"
        return cls(
            cpu_model=cpu_model,
            logical_cores=os.cpu_count() or 1,
            usable_cores=usable,
            torch_version=torch.__version__,
            transformers_version=tf_version,
            python_version=platform.python_version(),
            torch_threads=torch.get_num_threads(),
            interop_threads=torch.get_num_interop_threads(),
            platform=platform.platform(),
            load_average=load,
        )

    def describe(self) -> str:
        return (
            f"{self.cpu_model}, {self.usable_cores} usable of {self.logical_cores} logical cores, no GPU used; "
            f"torch {self.torch_version} ({self.torch_threads} intra-op / {self.interop_threads} inter-op threads), "
            f"transformers {self.transformers_version}, Python {self.python_version}, {self.platform}; "
            f"load average at start {self.load_average}"
        )


# ============================================================================ timing
@dataclass
class Timing:
    """Wall-clock samples (seconds) of one measured thing, warm-up excluded."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def minimum(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> float:
        """(max − min) / median: how noisy the samples were."""
        if len(self.samples) < 2:
            return 0.0
        return (max(self.samples) - min(self.samples)) / self.median

    def to_dict(self) -> dict:
        return {"name": self.name, "median_s": self.median, "min_s": self.minimum, "samples_s": self.samples}


def clock() -> float:
    return time.perf_counter()


def measure(fn: Callable[[], object], *, warmup: int, repeats: int, name: str = "") -> Timing:
    """Run `fn` `warmup` times untimed, then `repeats` times timed."""
    for _ in range(warmup):
        fn()
    timing = Timing(name)
    for _ in range(repeats):
        start = clock()
        fn()
        timing.samples.append(clock() - start)
    return timing


def measure_interleaved(
    fns: dict[str, Callable[[], object]], *, warmup: int, repeats: int, on_round: Callable[[int], None] | None = None
) -> dict[str, Timing]:
    """Time several variants round-robin: every round runs each variant once, order rotating per round.

    A variant may return a dict of extra named durations (seconds) measured inside it (component
    timings); they are collected as Timings named "<variant>/<key>".
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    timings: dict[str, Timing] = {name: Timing(name) for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            start = clock()
            extra = fns[name]()
            timings[name].samples.append(clock() - start)
            if isinstance(extra, dict):
                for key, value in extra.items():
                    timings.setdefault(f"{name}/{key}", Timing(f"{name}/{key}")).samples.append(value)
        if on_round:
            on_round(r)
    return timings


def paired_ratio(numerator: Timing, denominator: Timing) -> float:
    """Median over rounds of numerator_r / denominator_r (both timed in the same rounds)."""
    pairs = [a / b for a, b in zip(numerator.samples, denominator.samples) if b > 0]
    return statistics.median(pairs) if pairs else float("nan")


def paired_ratio_range(numerator: Timing, denominator: Timing) -> tuple[float, float]:
    pairs = [a / b for a, b in zip(numerator.samples, denominator.samples) if b > 0]
    return (min(pairs), max(pairs)) if pairs else (float("nan"), float("nan"))


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_ratio(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}×" if math.isfinite(value) else "n/a"


def fmt_pct(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f} %" if math.isfinite(value) else "n/a"


# ============================================================================ memory
def _proc_status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+)\s+kB", text, flags=re.M)
    return int(found.group(1)) if found else None


def current_rss_mib() -> float:
    rss = _proc_status_kib("VmRSS")
    if rss is not None:
        return rss / 1024
    import psutil  # pragma: no cover

    return psutil.Process().memory_info().rss / 2**20


def release_free_memory() -> bool:
    """Return the C allocator's free heap pages to the OS (glibc `malloc_trim(0)`), so that the
    resident set measured next is what is live, not what an earlier pass freed but malloc kept."""
    gc.collect()
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) of this process; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource  # pragma: no cover

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ============================================================================ models and batches
T5_SMALL_KW = dict(
    d_model=512,
    d_ff=2048,
    d_kv=64,
    num_heads=8,
    num_layers=6,
    num_decoder_layers=6,
    vocab_size=32128,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
    dropout_rate=0.0,
)


def build_model(kind: str, *, seed: int = 0):
    """`(model, tokenizer)`, frozen and in eval mode. `tiny`: bmtpt's own; `t5-small`: the t5-small
    shape with random weights and ByT5's byte tokenizer (ids < 384, valid for the 32,128-row vocab)."""
    from bmtpt_cli.runner.model import load_frozen_t5

    if kind == "tiny":
        return load_frozen_t5("tiny")
    if kind == "t5-small":
        from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = T5ForConditionalGeneration(T5Config(**T5_SMALL_KW))
        model.requires_grad_(False)
        model.eval()
        return model, ByT5Tokenizer()
    raise ValueError(f"unknown model kind {kind!r}")


def build_runner(kind: str, *, max_source_length: int = 256, max_target_length: int = 16):
    from bmtpt_cli.runner.runner import FrozenT5Runner

    model, tokenizer = build_model(kind)
    return FrozenT5Runner(model, tokenizer, max_source_length=max_source_length, max_target_length=max_target_length)


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


def random_batch(vocab_size: int, batch: int, source_len: int, target_len: int, *, seed: int = 0):
    """An `EncodedBatch` of random token ids (no padding), each sequence ending in </s> (id 1)."""
    from bmtpt_cli.runner.runner import EncodedBatch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (batch, source_len), generator=g)
    ids[:, -1] = 1
    labels = torch.randint(3, vocab_size, (batch, target_len), generator=g)
    labels[:, -1] = 1
    return EncodedBatch(ids, torch.ones_like(ids), labels)


def sample_particles(runner, count: int, length: int, *, seed: int = 0) -> torch.Tensor:
    from bmtpt_cli.runner.prompts import sample_vocab_prompts

    return sample_vocab_prompts(
        runner.vocab_embeddings, count=count, length=length, vocab_limit=runner.vocab_size,
        generator=torch.Generator().manual_seed(seed),
    )


class _Probe:
    """Timestamps taken inside the real `svgd_step` (via a runner proxy and wrapped kernel functions)."""

    marks: dict[str, float] | None = None

    @classmethod
    def mark(cls, key: str) -> None:
        if cls.marks is not None and key not in cls.marks:
            cls.marks[key] = clock()


def _install_kernel_probes() -> None:
    """Wrap `rbf_kernel` as `bmtpt_cli.svgd.train` sees it, to timestamp the start of the SVGD update
    (process-local monkeypatch; no file is changed). Idempotent."""
    import bmtpt_cli.svgd.train as train

    if getattr(train.rbf_kernel, "_bench_probe", False):
        return
    original = train.rbf_kernel

    def rbf_kernel(*args, **kwargs):
        _Probe.mark("svgd_start")
        return original(*args, **kwargs)

    rbf_kernel._bench_probe = True
    train.rbf_kernel = rbf_kernel


class _RunnerProxy:
    """The runner as `svgd_step` sees it: `encode` returns the pre-built batch (no tokenising) and the
    forward pass is timestamped; everything else is the real runner."""

    def __init__(self, runner, batch):
        self._runner, self._batch = runner, batch

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def encode(self, sources, targets=None):
        return self._batch

    def particle_loss_sums(self, particles, batch):
        out = self._runner.particle_loss_sums(particles, batch)
        _Probe.mark("forward_end")
        return out


class SourceStep:
    """One SVGD source step on a PRE-BUILT `EncodedBatch`, with per-component timings.

    Runs the REAL `bmtpt_cli.svgd.train.svgd_step`, handed a runner proxy whose `encode` returns the
    pre-built batch (so nothing is tokenised and the token batch is exactly the bare pass's), then
    what `train_source` does per step: `optimizer.step()`, `zero_grad`, `scheduler.step()`.
    Timestamps: after the forward (`runner.particle_loss_sums`), at the entry of `rbf_kernel`, at the
    return of `svgd_step`, after the optimizer. So "backward" is `torch.autograd.grad` plus the few
    scalar lines before the kernel (loss/token division, `dist.sum` no-ops), and "svgd" is
    `rbf_kernel` + `svgd_direction` + writing `-phi` into `.grad`.
    `bookkeeping()` is the rest of `train_source`'s loop body (finite checks, `mean_pairwise_distance`,
    the StepRecord's `.item()`/`.tolist()`), timed separately. Optimizer/schedule settings are
    `SourceConfig`'s defaults (AdamW lr 0.3, wd 1e-5, warm-up 500 of 100k steps).
    """

    def __init__(self, runner, shape: StepShape, *, seed: int = 0):
        from bmtpt_cli.data.task import TextExample
        from bmtpt_cli.runtime.schedule import linear_schedule
        from bmtpt_cli.svgd.kernel import damping_lambda

        _install_kernel_probes()
        self.runner = runner
        self.shape = shape
        self.batch = random_batch(runner.model.config.vocab_size, shape.batch, shape.source_len, shape.target_len,
                                  seed=seed)
        self.proxy = _RunnerProxy(runner, self.batch)
        self.examples = [TextExample(source="", target="", label=None) for _ in range(shape.batch)]  # unused text
        self.particles = torch.nn.Parameter(sample_particles(runner, shape.particles, shape.prompt_length, seed=seed))
        self.optimizer = torch.optim.AdamW([self.particles], lr=0.3, weight_decay=1e-5)
        self.scheduler = linear_schedule(self.optimizer, warmup_steps=500, total_steps=100_000)
        self.damping = damping_lambda(shape.particles, shape.prompt_length * runner.d_model)
        self.last = None

    def __call__(self) -> dict[str, float]:
        from bmtpt_cli.svgd import train

        _Probe.marks = marks = {"start": clock()}
        try:
            self.last = train.svgd_step(self.proxy, self.particles, self.examples, damping=self.damping,
                                        likelihood_scale=1.0, bandwidth=None)
            marks["svgd_end"] = clock()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            marks["end"] = clock()
        finally:
            _Probe.marks = None
        return {
            "forward": marks["forward_end"] - marks["start"],
            "backward": marks["svgd_start"] - marks["forward_end"],
            "svgd": marks["svgd_end"] - marks["svgd_start"],
            "optimizer": marks["end"] - marks["svgd_end"],
        }

    def bookkeeping(self) -> None:
        """The rest of train_source's loop body (no file I/O)."""
        from bmtpt_cli.svgd.kernel import mean_pairwise_distance

        losses, h = self.last
        if not torch.isfinite(losses).all():
            raise RuntimeError("non-finite loss")
        if not torch.isfinite(self.particles).all():
            raise RuntimeError("non-finite particles")
        _ = (losses.mean().item(), [round(v, 6) for v in losses.tolist()], float(h),
             mean_pairwise_distance(self.particles.detach()))


class BarePass:
    """The floor: frozen-T5 forward + backward on the same M·B sequences, nothing else.

    `inputs_embeds` (M·B, l+n, d) = concat(leaf prompt (M·B, l, d) with requires_grad, token
    embeddings computed once up front); cross-entropy (mean); backward into the leaf prompt.
    """

    def __init__(self, step: SourceStep):
        runner, shape, batch = step.runner, step.shape, step.batch
        self.model = runner.model
        mb = shape.particles * shape.batch
        with torch.no_grad():
            ids = batch.input_ids.repeat(shape.particles, 1)
            self.token_embeds = self.model.get_input_embeddings()(ids)  # (M·B, n, d)
        self.prompt = (
            step.particles.detach().unsqueeze(1).expand(-1, shape.batch, -1, -1).reshape(mb, shape.prompt_length, -1)
            .clone().requires_grad_(True)
        )  # leaf (M·B, l, d)
        self.mask = torch.ones(mb, shape.prompt_length + shape.source_len, dtype=torch.long)
        self.labels = batch.labels.repeat(shape.particles, 1)
        self.decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=self.labels)

    def __call__(self) -> None:
        inputs_embeds = torch.cat([self.prompt, self.token_embeds], dim=1)
        logits = self.model(inputs_embeds=inputs_embeds, attention_mask=self.mask,
                            decoder_input_ids=self.decoder_input_ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.labels.reshape(-1))
        loss.backward()
        self.prompt.grad = None


def demo_text_batch(per_task: int = 6):
    """A real text batch: `per_task` training examples from each of the 5 demo tasks (6 → 30)."""
    from bmtpt_cli.data.demo import DEMO_TASKS

    examples = []
    for task in DEMO_TASKS.values():
        examples.extend(task.examples("train")[:per_task])
    return examples


# ============================================================================ profiling
def profile_top_ops(fn: Callable[[], object], *, row_limit: int = 15, sort_by: str = "self_cpu_time_total") -> str:
    """torch.profiler table of one call of `fn` (after it has been warmed up by the caller)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        fn()
    return prof.key_averages().table(sort_by=sort_by, row_limit=row_limit, max_name_column_width=60)


def profile_diff(a: Callable[[], object], b: Callable[[], object], *, calls: int = 10, blocks: int = 2,
                 row_limit: int = 15, names: tuple[str, str] = ("step", "bare")) -> str:
    """Per-call self CPU time of every op under `a` minus under `b` (torch.profiler), the two profiled
    in alternating blocks of `calls` calls; the ops that explain why `a` is slower than `b`."""
    from torch.profiler import ProfilerActivity, profile

    totals: list[dict[str, list[float]]] = [{}, {}]
    for _ in range(blocks):
        for side, fn in enumerate((a, b)):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(calls):
                    fn()
            for event in prof.key_averages():
                entry = totals[side].setdefault(event.key, [0.0, 0.0])
                entry[0] += event.self_cpu_time_total / (calls * blocks)
                entry[1] += event.count / (calls * blocks)
    keys = set(totals[0]) | set(totals[1])
    rows = sorted(((totals[0].get(k, [0, 0])[0] - totals[1].get(k, [0, 0])[0], k) for k in keys), reverse=True)
    sum_a = sum(v[0] for v in totals[0].values())
    sum_b = sum(v[0] for v in totals[1].values())
    lines = [f"self CPU per call: {names[0]} {sum_a:.0f} µs, {names[1]} {sum_b:.0f} µs, difference {sum_a - sum_b:.0f} µs "
             f"(profiled in {blocks} alternating blocks of {calls} calls)",
             f"{'Δ self CPU/call':>16}  {'op':60s}  calls/call {names[0]} vs {names[1]}"]
    for delta, k in rows[:row_limit]:
        ca, cb = totals[0].get(k, [0, 0])[1], totals[1].get(k, [0, 0])[1]
        lines.append(f"{delta:13.1f} µs  {k[:60]:60s}  {ca:6.1f} vs {cb:6.1f}")
    return "\n".join(lines)


def cprofile_top(fn: Callable[[], object], *, row_limit: int = 20, sort: str = "tottime") -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(row_limit)
    return out.getvalue()


# ============================================================================ tables and reports
@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        def esc(cell: str) -> str:
            return cell.replace("|", "\\|")

        lines = [f"**{self.title}**", "", "| " + " | ".join(map(esc, self.columns)) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def print(self) -> None:
        try:
            from rich.console import Console
            from rich.table import Table as RichTable

            table = RichTable(title=self.title, title_justify="left")
            for column in self.columns:
                table.add_column(column)
            for row in self.rows:
                table.add_row(*row)
            Console(width=200).print(table)
        except ImportError:  # pragma: no cover
            print(self.markdown())


def command_line() -> str:
    """The exact command that reproduces this run, from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:  # pragma: no cover
        script_text = str(script)
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"HF_HUB_OFFLINE=1 .venv/bin/python {script_text}{(' ' + args) if args else ''}"


def write_report(
    name: str,
    title: str,
    *,
    what: str,
    machine: Machine,
    tables: Sequence[Table],
    goal: str,
    notes: Iterable[str] = (),
    details: Iterable[tuple[str, str]] = (),
    data: dict | None = None,
    quick: bool = False,
    elapsed_s: float | None = None,
    write: bool = True,
) -> str:
    """Print the tables and write `docs/benchmarks/<name>.md` (+ `benchmarks/results/<name>.json`)."""
    for table in tables:
        table.print()
    print(f"GOAL: {goal}")
    parts = [f"## {title}", ""]
    if quick:
        parts += ["> **--quick run**: reduced repeats/shapes for debugging; not the reported figures.", ""]
    parts += [f"**What it measures.** {what}", "", "**Reproduce:**", "", "```bash", command_line(), "```", "",
              f"**Machine:** {machine.describe()}" + (f"; this script ran {elapsed_s:.0f} s" if elapsed_s else "") + ".",
              ""]
    for table in tables:
        parts += [table.markdown(), ""]
    for note in notes:
        parts += [f"- {note}"]
    if notes:
        parts.append("")
    parts += [f"**Goal:** {goal}", ""]
    for summary, body in details:
        parts += ["<details><summary>" + summary + "</summary>", "", "```text", body.rstrip(), "```", "", "</details>",
                  ""]
    text = "\n".join(parts)
    if write:
        FRAGMENTS_DIR.mkdir(parents=True, exist_ok=True)
        (FRAGMENTS_DIR / f"{name}.md").write_text(text)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        payload = {"name": name, "title": title, "goal": goal, "quick": quick, "command": command_line(),
                   "machine": asdict(machine), "data": data or {}}
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    return text


def _json_default(obj):
    if isinstance(obj, Timing):
        return obj.to_dict()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return str(obj)


def base_parser(description: str, *, repeats: int, warmup: int = 1) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed repeats per variant after warm-up (default {repeats}; --quick: fewer)")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed warm-up runs (default {warmup})")
    parser.add_argument("--quick", action="store_true", help="a fast debugging run: fewer repeats, smaller shapes")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write docs/ or results/")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.set_defaults(_default_repeats=repeats)
    return parser


def finish_args(args: argparse.Namespace, *, quick_repeats: int = 1) -> argparse.Namespace:
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else args._default_repeats
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = a·x + b; returns (a, b, R²)."""
    import numpy as np

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    a, b = np.polyfit(x, y, 1)
    residual = y - (a * x + b)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
    return float(a), float(b), float(r2)
