"""The benchmarks' harness: timing, machine description, profiling, tables and reports.

Nothing in here knows bmtpt: what is measured lives in `workloads.py` (which calls the shipped
`start_source` / `source_update` / `svgd_step`), this module only times, profiles and reports it.

Conventions every benchmark follows (the machines here are shared and noisy):

* Nothing is downloaded: `HF_HUB_OFFLINE=1` is set before `transformers` is imported, and every
  model is built from a `T5Config` with random weights (the cost of a pass does not depend on them).
* Figures are RATIOS measured within one run. Competing variants are timed *interleaved*
  (round-robin, the order rotating every round) after warm-up, and a ratio is the median over
  rounds of the per-round ratio, so slow phases of the machine hit both sides alike.
* Where a step's time is split into parts, the parts are the shipped step's own
  `torch.profiler.record_function` ranges (`bmtpt.encode`, `.forward`, `.backward`, `.reduce`,
  `.svgd`, `.optimizer`), read from a `torch.profiler` run over real steps (`profile_ranges`).
* Each benchmark writes one markdown fragment `docs/benchmarks/NN_name.md`; `run_all.py`
  concatenates every fragment in that folder, sorted by name, into `docs/benchmarks.md`, so later
  benchmarks (data-parallel, GPU, ...) only need to drop their own fragment there.
  Raw numbers also go to `benchmarks/results/<name>.json`. A `--quick` run (or any run given
  `--out DIR`) writes to `DIR/fragments/`, `DIR/results/` and `DIR/benchmarks.md` instead
  (default for `--quick`: `$TMPDIR/bmtpt-benchmarks-quick`), so smoke runs never overwrite the
  recorded figures.
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
import tempfile
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
QUICK_OUT = Path(tempfile.gettempdir()) / "bmtpt-benchmarks-quick"


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: markdown fragments, JSON results and the merged document."""

    fragments: Path
    results: Path
    doc: Path

    @classmethod
    def recorded(cls) -> "Outputs":
        """The repository's recorded figures: docs/benchmarks/, benchmarks/results/, docs/benchmarks.md."""
        return cls(FRAGMENTS_DIR, RESULTS_DIR, DOC_PATH)

    @classmethod
    def under(cls, root: Path) -> "Outputs":
        root = Path(root)
        return cls(root / "fragments", root / "results", root / "benchmarks.md")

    @property
    def is_recorded(self) -> bool:
        return self == Outputs.recorded()


def outputs_for(out: str | Path | None, quick: bool) -> Outputs:
    """`--out DIR` if given; else the recorded files, or `QUICK_OUT` for a --quick run."""
    if out:
        return Outputs.under(Path(out))
    return Outputs.under(QUICK_OUT) if quick else Outputs.recorded()


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


# ============================================================================ profiling
def profile_ranges(fns: dict[str, Callable[[], object]], *, calls: int = 1,
                   prefixes: tuple[str, ...] = ("bmtpt.",)) -> dict[str, float]:
    """Seconds per call spent in named `torch.profiler.record_function` ranges, from ONE
    `torch.profiler.profile` (CPU) session over `calls` rounds of every function in `fns`.

    Each call of `fns[name]` runs inside a range `bench.<name>` (the caller's side; nothing in the
    measured code is wrapped or replaced), so the result holds `bench.<name>` (the whole call) and
    every range whose name starts with one of `prefixes` that the measured code opened itself —
    e.g. the shipped step's `bmtpt.forward`. A range's time is its CPU wall time (inclusive of the
    ops inside it), summed over the session and divided by `calls`. Profiling adds a small cost per
    op, so these times are a little above the unprofiled ones; compare them with each other.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    names = list(fns)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for r in range(calls):
            for name in names[r % len(names):] + names[: r % len(names)]:
                with record_function(f"bench.{name}"):
                    fns[name]()
    wanted = ("bench.",) + tuple(prefixes)
    totals: dict[str, float] = {}
    for event in prof.events():
        if event.name.startswith(wanted) and event.device_type == DeviceType.CPU:
            totals[event.name] = totals.get(event.name, 0.0) + event.cpu_time_total
    return {name: micros / 1e6 / calls for name, micros in totals.items()}


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
    out: str | Path | None = None,
) -> str:
    """Print the tables and write the fragment `<name>.md` and `<name>.json`: under `docs/benchmarks/`
    and `benchmarks/results/` for a full run, under `outputs_for(out, quick)` for a --quick run or
    one given `--out` (so a smoke run never overwrites the recorded figures)."""
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
        where = outputs_for(out, quick)
        where.fragments.mkdir(parents=True, exist_ok=True)
        (where.fragments / f"{name}.md").write_text(text)
        where.results.mkdir(parents=True, exist_ok=True)
        payload = {"name": name, "title": title, "goal": goal, "quick": quick, "command": command_line(),
                   "machine": asdict(machine), "data": data or {}}
        (where.results / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_json_default))
        print(f"wrote {where.fragments / (name + '.md')} and {where.results / (name + '.json')}")
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
    parser.add_argument("--no-write", action="store_true", help="print only; write no fragment and no JSON")
    parser.add_argument("--out", default=None,
                        help="write the fragment and JSON under DIR/fragments and DIR/results instead of docs/benchmarks "
                             f"and benchmarks/results (a --quick run defaults to {QUICK_OUT})")
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


def adapt_step_args(description: str, *, repeats: int, extra: Callable[[argparse.ArgumentParser], None] | None = None
                    ) -> argparse.Namespace:
    """The arguments of an adaptation-step benchmark: the base ones, `--models` (tiny,t5-small) and
    `--batch` (8), whatever `extra` adds; one thread unless --threads says otherwise; 3 repeats with --quick."""
    parser = base_parser(description, repeats=repeats, warmup=2)
    parser.add_argument("--models", default="tiny,t5-small", help="model shapes, comma-separated (workloads.build_model)")
    parser.add_argument("--batch", type=int, default=8)
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1
    return finish_args(args, quick_repeats=3)


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = a·x + b; returns (a, b, R²)."""
    import numpy as np

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    a, b = np.polyfit(x, y, 1)
    residual = y - (a * x + b)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
    return float(a), float(b), float(r2)
