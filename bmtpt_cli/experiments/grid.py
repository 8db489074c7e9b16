"""`bmtpt fewshot`: the few-shot grid of SPEC §4 (the paper's Table 2) in one function.

Every cell (method, k, task, seed) is the few-shot cell of `evaluate --shots` (SPEC §4), with the
method's init and prior from `methods.registry` (pt, multitask, bmtpt, bmtpt-noprior, particle-I,
spot, …; each method's flag names its sources: --particles, --multitask, --source-prompts); the
cells of one method, k and task run together in groups of `--cells-per-pass` (`fewshot.run_cells`:
shared passes of the frozen LM, each cell its own run to float32 round-off). spot's target
embedding is learnt on the cell's subset.

A method whose flag names several files (`--particles a,b,c`: independent source posteriors) runs
from each, crossed with every seed. The k-shot subset depends on (task, k, seed) only, so every
method's cell at a seed sees the same examples, and method − baseline at a seed and posterior is a
pair: the table reports each method's paired difference against `--baseline` with a t and a
clustered bootstrap interval (`evaluation.paired`). Each finished cell is one line of `OUT/results.jsonl`, appended and flushed at once; a
stopped grid resumes with `resume` (rows whose fingerprint matches are kept). At the end the table
(`table.md`, `table.csv`), `plot.png` and `report.json` are written, each atomically.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from bmtpt_cli.methods.base import TASK_PROMPTS_DIR, StartRequest, TransferMethod
from bmtpt_cli.methods.init import RANDOM_INIT, RETRIEVE_PREFIX, RetrievalTarget, read_init_file
from bmtpt_cli.methods.registry import method_named
from bmtpt_cli.adapter.train import AdaptConfig
from bmtpt_cli.artifacts import file_sha256
from bmtpt_cli.artifacts.task_prompts import read_task_prompts
from bmtpt_cli.data.config import DataConfig, examples_sha256
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.errors import BmtptError, excerpt
from bmtpt_cli.experiments.fewshot import CellPlan, FewshotProtocol, leave_nothing_on_failure, load_task_data, run_cells, subset_sha256
from bmtpt_cli.experiments.plot import uniform_chance, write_plot
from bmtpt_cli.jobs.evaluate import write_report
from bmtpt_cli.scoring.config import ScoringConfig
from bmtpt_cli.scoring.score import decode_mode
from bmtpt_cli.experiments.tables import MAIN, QUANTITIES, build_table, paired_comparisons, table_csv, table_markdown
from bmtpt_cli.runner.load import RunnerConfig, load_runner
from bmtpt_cli.runner.model import TINY_MODEL
from bmtpt_cli.runtime.checkpoint import check_fingerprint, read_jsonl_records
from bmtpt_cli.runtime.files import OutputLock, check_output_directory, write_text_atomic
from bmtpt_cli.runtime.loop import config_fingerprint
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.runtime.tracking import open_tracker

RESULTS, TABLE_MD, TABLE_CSV, PLOT, REPORT = "results.jsonl", "table.md", "table.csv", "plot.png", "report.json"
OUTPUTS = (RESULTS, TABLE_MD, TABLE_CSV, PLOT, REPORT)
TINY_CAVEAT = "model 'tiny' has random weights: these scores are chance level (the run checks the pipeline, not the method)"
SOURCE_FLAGS = {"--particles": "particles", "--multitask": "multitask", "--source-prompts": "source_prompts"}
"""The grid's options naming methods' sources, and the `GridJob` field each fills."""


@dataclass(frozen=True)
class Method:
    """A table row's cells from one source: the method (`methods.registry`), the file or directory
    it starts from (None: it needs none) and which of its flag's source posteriors that is (from 0)."""

    method: TransferMethod
    path: str | None = None
    source: int = 0
    option: str | None = None  # the option that named the path (None: the method's fewshot flag)

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def init(self) -> str:
        """The source as `--init` writes it (random, a file, retrieve:DIR): cells' fingerprints record it."""
        if self.path is None:
            return RANDOM_INIT
        return RETRIEVE_PREFIX + self.path if self.method.source == TASK_PROMPTS_DIR else self.path

    @property
    def particle(self) -> int | None:
        return self.method.details.get("particle")

    def prior_used(self, configured: bool) -> bool:
        """Whether the method's cells have the prior term, given `--prior` (`configured`)."""
        return self.method.needs_source and self.method.uses_prior(configured)


@dataclass(frozen=True)
class GridJob:
    """The grid: methods × shots × tasks × seeds (the seeds `--seeds` resolved to), and where it goes.

    `prompt_length`: the length of `pt`'s random init when no file gives one; `required_length`: a
    length asked for explicitly, which every file must match. `adapt.seed` is replaced per cell.
    """

    tasks: list[str]
    methods: list[str]
    shots: list[int]
    seeds: list[int]
    seed: int
    particles: list[Path]  # each an independent source posterior (likewise multitask, source_prompts)
    multitask: list[Path]
    source_prompts: list[Path]
    shot_sampling: str
    dev_shots: int  # 0: score the last step
    retrieval_steps: int
    retrieval_measure: str
    prompt_length: int | None
    required_length: int | None
    runner: RunnerConfig
    data: DataConfig
    adapt: AdaptConfig
    prior: bool  # --prior: what the methods whose prior is as configured do
    scoring: ScoringConfig
    out: Path
    force: bool
    resume: bool
    settings: dict
    report_to: str = "none"  # --report-to: each cell's step records also go there, one run per cell
    baseline: str = "pt"  # what the paired differences compare with (the first method when it is not one)
    solved_at: float | None = None  # report the share of cells whose main metric reaches this
    cells_per_pass: int = 1  # cells of one method, k and task adapted together in shared passes
    calibrate: bool = False  # --calibrate: each cell fits a temperature on its dev examples (SPEC §4)
    metric: str = "main"  # --metric: what the table and plot show per cell (`tables.QUANTITIES`)

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds)

    def protocol(self, k: int) -> FewshotProtocol:
        """The protocol of every k-shot cell."""
        return FewshotProtocol(k, self.shot_sampling, self.dev_shots, self.adapt, self.scoring, self.data.label_style,
                               calibrate=bool(self.calibrate))


def plan_methods(job: GridJob) -> list[Method]:
    """The methods of `--methods` (`methods.registry`), one per source posterior its flag names; a
    method whose source is not given, or given twice, or an unknown name is refused in one line
    naming the flag."""
    if len(set(job.methods)) != len(job.methods):
        raise BmtptError(f"--methods names a method twice ({','.join(job.methods)}): give each method once")
    if len(set(job.shots)) != len(job.shots):
        raise BmtptError(f"--shots names a k twice ({','.join(map(str, job.shots))}): give each k once")
    planned = []
    for name in job.methods:
        method = method_named(name, flag="--methods")
        if not method.needs_source:
            planned.append(Method(method))
            continue
        if method.flag not in SOURCE_FLAGS:
            raise BmtptError(f"method '{name}' starts from {method.make_source}, which bmtpt fewshot has no option for: "
                             "run it with bmtpt adapt, or drop it from --methods")
        paths = _needs(getattr(job, SOURCE_FLAGS[method.flag]), method)
        planned += [Method(method, path, j) for j, path in enumerate(paths)]
    return planned


def source_counts(methods: list[Method]) -> dict[str, int]:
    """How many source posteriors each method of the grid runs from (1 for pt)."""
    counts: dict[str, int] = {}
    for method in methods:
        counts[method.name] = max(counts.get(method.name, 0), method.source + 1)
    return counts


def _needs(paths: list[Path], transfer: TransferMethod) -> list[str]:
    """The source paths of `transfer`'s flag, each checked to exist as a file or directory as it needs."""
    method, flag, what = transfer.name, transfer.flag, transfer.make_source
    if not paths:
        raise BmtptError(f"method '{method}' needs {flag}: pass {flag} with {what}, or drop {method} from --methods")
    for path in paths:
        if transfer.source == TASK_PROMPTS_DIR and not Path(path).is_dir():
            raise BmtptError(f"{flag} '{path}' is not a directory (needed by method '{method}'): run `bmtpt source --per-task --out {path}` first")
        if transfer.source != TASK_PROMPTS_DIR and Path(path).is_dir():
            raise BmtptError(f"{flag} '{path}' is a directory, not a file (needed by method '{method}'): pass {what}")
        if transfer.source != TASK_PROMPTS_DIR and not Path(path).is_file():
            raise BmtptError(f"{flag} '{path}' not found (needed by method '{method}'): make it with {what}, or drop {method} from --methods")
    return [str(path) for path in paths]


def read_sources(job: GridJob, methods: list[Method]) -> tuple[dict, dict[str, str], int | None]:
    """Read every method's source before a model loads: init files by spec, each spec's sha256
    (a directory's: of its files' hashes), and the prompt length the files share (None: no file)."""
    files, hashes, lengths = {}, {}, set()
    for method in methods:
        if method.init == RANDOM_INIT or (method.init in hashes and method.init not in files):
            continue
        if method.init.startswith(RETRIEVE_PREFIX):
            prompts = read_task_prompts(Path(method.init[len(RETRIEVE_PREFIX):]), flag=method.option or "--source-prompts")
            hashes[method.init] = _sha256_of({task: file_sha256(p.path) for task, p in prompts.items()})
            lengths |= {p.prompt.shape[0] for p in prompts.values()}
            continue
        init_file = files.get(method.init) or read_init_file(method.init)
        method.method.check_source(method.init, init_file, method.option or method.method.flag)  # e.g. a posterior given to --multitask
        files[method.init] = init_file
        hashes[method.init] = file_sha256(init_file.path)
        lengths.add(init_file.prompt.shape[0])
    for method in methods:
        if method.particle is not None:
            count = files[method.init].particles.shape[0] if files[method.init].particles is not None else 0
            if method.particle >= count:
                raise BmtptError(
                    f"method '{method.name}' asks for particle {method.particle}, but --particles '{method.init}' holds "
                    f"M = {count} (particle-0 … particle-{count - 1})"
                )
    if len(lengths) > 1:
        raise BmtptError(
            f"the methods' source files have different prompt lengths ({', '.join(map(str, sorted(lengths)))}): "
            "give --particles, --multitask and --source-prompts made with one --prompt-length"
        )
    return files, hashes, (lengths.pop() if lengths else None)


def _sha256_of(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def cell_fingerprint(job: GridJob, method: Method, source_sha256: str, k: int, task: str, seed: int, pt_length: int) -> dict:
    """Everything a finished cell depends on; a row is kept on --resume only if all of it matches."""
    adapt = config_fingerprint(job.adapt, ignore=("checkpoint_every", "eval_every", "eval_batch_size", "seed", "prior"))
    scoring = config_fingerprint(job.scoring, ignore=("eval_batch_size",))
    return {
        "method": method.name, "source": method.source, "init": method.init, "init_sha256": source_sha256,
        "prior": method.prior_used(job.prior), "particle": method.particle,
        "prompt_length": pt_length if method.init == RANDOM_INIT else None,
        "retrieval": [job.retrieval_steps, job.retrieval_measure] if method.method.retrieves else None,
        "shots": k, "task": task, "seed": seed, "shot_sampling": job.shot_sampling, "dev_shots": job.dev_shots,
        "model": job.runner.model, **adapt, **scoring, **job.data.fingerprint(), **job.runner.fingerprint(),
        **({"calibrate": True} if job.calibrate else {}),  # absent without it: rows written before --calibrate existed match
    }


def check_out(job: GridJob) -> Path:
    """Refuse an existing, non-empty `out` without --resume or --force, and --resume with no results."""
    out = Path(job.out)
    results = out / RESULTS
    if out.exists() and not out.is_dir():
        raise BmtptError(f"'{out}' is a file: --out names the folder the grid is written to; choose another --out")
    if job.resume and not results.is_file():
        raise BmtptError(f"--resume given but no results at '{results}': run without --resume to start the grid")
    if out.is_dir() and any(out.iterdir()) and not (job.resume or job.force):
        raise BmtptError(
            f"'{out}' already exists: pass --resume to continue its grid, --force to start over, or choose another --out"
        )
    check_output_directory(out)
    return results


def read_results(path: Path, expected: dict[tuple, dict]) -> dict[tuple, dict]:
    """The rows of `results.jsonl` for the grid's cells, by (method, source, k, task, seed); a row made
    with other settings is refused, naming the setting (a row of a cell outside the grid is kept as is)."""
    rows = {}
    for row in read_jsonl_records(path):
        check_row(path, row)
        key = row_key(row)
        if key in expected:
            check_fingerprint(path, row.get("fingerprint", {}), expected[key])
            rows[key] = row
    return rows


def row_key(row: dict) -> tuple:
    """A results row's cell: (method, source posterior, k, task, seed); rows written before several
    posteriors per method existed have no source and are posterior 0."""
    return row.get("method"), row.get("source", 0), row.get("k"), row.get("task"), row.get("seed")


def cell_key(method: Method, k: int, task, seed: int) -> tuple:
    """The key of a planned cell, as `row_key` reads it back."""
    return method.name, method.source, k, task.name, seed


ROW_TYPES = {"method": str, "k": int, "task": str, "seed": int, "metric": str, "value": float, "decode": str, "fingerprint": dict}
"""The fields of a `results.jsonl` row that resuming and the table read, with their types."""


def check_row(path: Path, row: dict) -> None:
    """Refuse, in one line, a results row the grid did not write (a field missing or of another type)."""
    for name, kind in ROW_TYPES.items():
        value = row.get(name)
        fits = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)  # NaN: an undefined metric
        if not fits or (kind in (int, float) and isinstance(value, bool)):
            raise BmtptError(
                f"'{path}' holds a row this grid did not write (its {name} is {excerpt(value)}): rerun with --force "
                "instead of --resume to start the grid over"
            )


@dataclass(frozen=True)
class GridPlan:
    """A grid's cells and what running them needs, all read before anything is written: the tasks,
    the planned methods, their source files (by `--init` spec) and hashes, pt's prompt length, every
    task's data, the cells (method, k, task, seed) in order and each cell's expected fingerprint."""

    tasks: list
    methods: list[Method]
    files: dict
    hashes: dict[str, str]
    pt_length: int | None
    data: dict
    cells: list[tuple]
    expected: dict[tuple, dict]


def plan_grid(job: GridJob, methods: list[Method]) -> GridPlan:
    """Read the methods' sources and the tasks' data and list the cells with their fingerprints."""
    tasks = resolve_tasks(job.tasks)
    if job.calibrate and not job.dev_shots:
        raise BmtptError("--calibrate needs dev examples: pass --dev-shots N")
    choosing = [m.name for m in methods if m.method.candidates]
    if choosing and not job.dev_shots:
        raise BmtptError(f"method {choosing[0]} keeps the candidate that scores best on dev examples: pass --dev-shots N (N > 0)")
    files, hashes, file_length = read_sources(job, methods)
    pt_length = job.required_length or file_length or job.prompt_length  # pt at the length the other methods have
    data = load_task_data(job.data, tasks, job.scoring.split, job.dev_shots)  # data problems show before any write
    if job.calibrate:
        bare = [t.name for t in tasks if not data[t.name].validation
                and decode_mode(t, data[t.name].test, job.scoring.decode, job.data.label_style) == "rank"]
        if bare:
            raise BmtptError(f"--calibrate needs dev examples, but {', '.join(bare)} has no validation examples to fit "
                             "a temperature on: give data with a validation split, or drop --calibrate")
    cells = [(method, k, task, seed) for k in job.shots for task in tasks for seed in job.seed_list for method in methods]
    data_hashes = {t.name: examples_sha256(vars(data[t.name])) for t in tasks}  # the examples behind each cell
    expected = {
        cell_key(m, k, t, s): {**cell_fingerprint(job, m, hashes.get(m.init, ""), k, t.name, s, pt_length),
                               "data_sha256": data_hashes[t.name]}
        for m, k, t, s in cells
    }
    return GridPlan(tasks, methods, files, hashes, pt_length, data, cells, expected)


def run_grid(job: GridJob, progress: Progress = SILENT) -> dict:
    """Run every cell of the grid not in `results.jsonl` yet, then write the table, plot and report."""
    resolve_tasks(job.tasks)  # an unknown task is named before anything else
    results = check_out(job)
    methods = plan_methods(job)
    resolve_baseline(job, methods)  # a mismatch of posteriors is refused before any cell runs
    plan = plan_grid(job, methods)
    created = not Path(job.out).exists()  # removed again if the run fails before its first row
    try:
        Path(job.out).mkdir(exist_ok=True)
    except OSError as exc:  # e.g. under /proc or on a read-only mount
        raise BmtptError(f"cannot create files in '{Path(job.out).parent}' ({exc.strerror or exc}): choose another --out") from None
    with leave_nothing_on_failure(results, Path(job.out) if created else None), OutputLock(results):
        if job.force and not job.resume:
            for name in OUTPUTS:
                (Path(job.out) / name).unlink(missing_ok=True)
        ordered = run_grid_cells(job, plan, results, tracked_at=Path(job.out), progress=progress)
        report = _write_outputs(job, plan.methods, plan.tasks, job.seed_list, ordered, plan.hashes)
    return report


def run_grid_cells(job: GridJob, plan: GridPlan, results: Path, *, tracked_at: Path, progress: Progress = SILENT,
                   label: str = "few-shot grid") -> list[dict]:
    """The one way few-shot cells run (the grid and `evaluate --shots`): with `job.resume` the rows of
    `results` whose fingerprint matches are kept, every other cell runs in groups of
    `job.cells_per_pass` and its row is appended to `results` (flushed per group); returns every
    cell's row in `plan.cells`' order. `tracked_at`: where `--report-to` writes."""
    done = read_results(results, plan.expected) if job.resume else {}
    todo = [cell for cell in plan.cells if cell_key(*cell) not in done]
    runner = load_runner(job.runner, progress=progress) if todo else None
    counts = source_counts(plan.methods)
    train_examples = job.data.train_reader()  # spot-mixture-K's sources' data, read once for every group
    rows = dict(done)
    tracking = open_tracker(job.report_to, tracked_at, job.settings, resume=job.resume)
    with progress.bar(label, len(plan.cells)) as update, open(results, "a", encoding="utf-8") as handle, tracking as tracker:
        update(len(done))
        for group in cell_groups(todo, job.cells_per_pass):
            method, k, task, _ = group[0]
            shown_method = f"{_method_label(method, counts)} · {k}-shot · {task.name}"
            seeds_shown = f"seed {group[0][3]}" if len(group) == 1 else f"{len(group)} cells together"
            runs = [tracker.run(f"{_method_label(m, counts, '@')}/k{k}/{task.name}/seed{seed}") for m, _, _, seed in group]
            for run in runs:
                if run is not None:
                    run.rewind(0)  # a cell run again after an interruption starts its record over

            def on_step(i, record, runs=runs, shown_method=shown_method, shown=seeds_shown):
                if runs[i] is not None:
                    runs[i].log(asdict(record))
                if i == 0:
                    update(len(rows), f"{shown_method} · {shown} · step {record.step}/{job.adapt.steps}")

            finished = _run_group(job, runner, group, plan.data[task.name], plan.files, plan.pt_length, plan.expected, on_step,
                                  train_examples)
            for cell, row in zip(group, finished):
                handle.write(json.dumps(row) + "\n")
                rows[cell_key(*cell)] = row
            handle.flush()
            update(len(rows), f"{shown_method} · {seeds_shown} · {finished[0]['metric']} "
                              f"{statistics.fmean(row['value'] for row in finished):.4f} on average")
    return [rows[cell_key(*cell)] for cell in plan.cells]


def cell_groups(cells: list[tuple], size: int) -> list[list[tuple]]:
    """The cells in groups adapted together: the same method, k and task (so one schedule), at most
    `size` each, in the grid's order of first appearance."""
    by_kind: dict[tuple, list[tuple]] = {}
    for cell in cells:
        method, k, task, _ = cell
        by_kind.setdefault((method.name, k, task.name), []).append(cell)
    return [same[i:i + size] for same in by_kind.values() for i in range(0, len(same), size)]


def _run_group(job, runner, group: list[tuple], data, files, pt_length, expected, on_step, train_examples) -> list[dict]:
    """Train and score a group of cells of one method, k and task together; their `results.jsonl` rows."""
    _, k, task, _ = group[0]
    protocol = job.protocol(k)

    def make_init(method: Method, seed: int):
        def init_from(subset):
            target = None
            if method.method.retrieves:  # the target's embedding is learnt on this cell's subset
                target = RetrievalTarget(task.name, subset, job.data.label_style, job.retrieval_steps, job.retrieval_measure,
                                         protocol.config(seed))
            return (method.method.candidates or method.method.start)(StartRequest(
                runner, seed, source=method.path, prompt_length=pt_length, required_length=job.required_length,
                init_file=files.get(method.init), target=target, target_tasks=(task.name,), load_examples=train_examples,
            ))
        return init_from

    plans = [CellPlan(seed, make_init(method, seed), method.method, job.prior) for method, _, _, seed in group]
    finished = run_cells(runner, task, data, protocol, plans, on_step=on_step)
    rows = []
    for (method, _, _, seed), cell in zip(group, finished):
        score = cell.score
        rows.append({
            "method": method.name, "source": method.source, "k": k, "task": task.name, "seed": seed, "benchmark": task.benchmark,
            "metric": score.metric, "value": score.value, "metrics": score.metrics, "calibration": score.calibration,
            "init": method.init, "init_sha256": cell.init.sha256, "init_details": getattr(cell.init, "details", {}),
            "prior": method.method.prior_centre(cell.init, job.prior) is not None,
            "decode": score.decode, "rules": score.rules, "invalid": score.invalid, "split": job.scoring.split,
            "examples": score.examples, "steps": job.adapt.steps, "lr_factor": protocol.lr_factor,
            "shot_sampling": job.shot_sampling, "subset_sha256": subset_sha256(cell.subset),
            "selection": protocol.selection(), "model": job.runner.model,
            "fingerprint": expected[cell_key(method, k, task, seed)],
        })
    return rows


def _method_label(method: Method, counts: dict[str, int], separator: str = " · source ") -> str:
    """The method's name, with its source posterior's number when it has several."""
    return method.name if counts.get(method.name, 1) == 1 else f"{method.name}{separator}{method.source}"


def resolve_baseline(job: GridJob, methods: list[Method]) -> str:
    """The method the paired differences compare with: `job.baseline`, or the first method when it is
    not one of the grid's; refuses a baseline and a method with different numbers of posteriors (both
    above one), which cannot be paired posterior by posterior."""
    counts = source_counts(methods)
    baseline = job.baseline if job.baseline in counts else methods[0].name
    for name, count in counts.items():
        if counts[baseline] > 1 and count > 1 and count != counts[baseline]:
            raise BmtptError(
                f"method {name} has {count} source posteriors and the baseline {baseline} {counts[baseline]}: pairs are "
                "made posterior by posterior, so give both the same number of files, or give the baseline one"
            )
    return baseline


def seed_ranges(seeds: list[int]) -> str:
    """Seeds as `--seeds` writes them, runs of consecutive seeds as ranges: `0-39`, `0-2, 7`."""
    parts, start = [], None
    for i, seed in enumerate(seeds):
        if start is None:
            start = seed
        if i + 1 == len(seeds) or seeds[i + 1] != seed + 1:
            parts.append(str(seed) if seed == start else f"{start}-{seed}")
            start = None
    return ", ".join(parts)


def _write_outputs(job: GridJob, methods, tasks, seeds, rows: list[dict], hashes) -> dict:
    """table.md, table.csv, plot.png and report.json from the grid's rows."""
    out = Path(job.out)
    counts = source_counts(methods)
    metric = job.metric or MAIN
    quantity = QUANTITIES[metric]
    table = build_table(
        rows, methods=list(counts), shots=list(job.shots), tasks=[(t.name, t.benchmark, t.metric) for t in tasks],
        seeds=seeds, sources=counts, solved_at=job.solved_at, metric=metric,
    )
    baseline = resolve_baseline(job, methods)
    comparisons = paired_comparisons(table, baseline) if len(counts) > 1 else []
    decode = sorted({row["decode"] for row in rows})
    machine = provenance(job.runner.device)
    several = {name: count for name, count in counts.items() if count > 1}
    replicates = (f"seeds {seed_ranges(seeds)}" if not several else
                  f"seeds {seed_ranges(seeds)} × source posteriors ({', '.join(f'{n}: {c}' for n, c in several.items())})")
    notes = [
        f"model {job.runner.model} · {job.scoring.split} split · decode {', '.join(decode)} · rank score "
        f"{job.scoring.rank_score} · {job.adapt.steps} steps · lr × 1/3 at k = 4 · {job.shot_sampling.replace('task', 'k per task').replace('class', 'k per class')}",
        f"each cell scored at: {job.protocol(job.shots[0]).selection()}."
        + (" Temperature scaling: T fitted per cell on its dev examples." if job.calibrate else ""),
        f"mean ± std over {replicates}, in {quantity.unit if metric == MAIN else quantity.short_unit}; an average is "
        "taken per replicate, then over replicates.",
        "methods: " + "; ".join(f"{name} = {_describe([m for m in methods if m.name == name], job)}" for name in counts),
        f"machine: {machine['cpu']} ({machine['cpu_capability']}), {machine['threads']} threads, torch "
        f"{machine['versions'].get('torch')}, transformers {machine['versions'].get('transformers')}; at high learning "
        "rates one cell is chaotic (another CPU or thread count changes it), a distribution over seeds is not.",
    ]
    title = "Few-shot results (bmtpt fewshot)"
    write_text_atomic(out / TABLE_MD, table_markdown(table, title=title, notes=notes, comparisons=comparisons))
    write_text_atomic(out / TABLE_CSV, table_csv(table, comparisons if comparisons else None))
    write_plot(
        out / PLOT, table, title=f"few-shot {quantity.label} against k · model {job.runner.model} · mean ± std over {len(seeds)} seeds"
        + (f" × up to {max(counts.values())} source posteriors" if several else ""),
        chance={t.name: uniform_chance(t.metric, t.verbalisers(job.data.label_style)) for t in tasks},
        caption=TINY_CAVEAT if job.runner.model == TINY_MODEL else None,
    )
    report = {
        "table": table,
        "baseline": baseline,
        "comparisons": comparisons,
        "methods": [{"name": m.name, "source": m.source, "init": m.init, "init_sha256": hashes.get(m.init, ""),
                     "prior": m.prior_used(job.prior), "particle": m.particle,
                     "description": _describe([m], job)} for m in methods],
        "protocol": {**job.protocol(job.shots[0]).describe(), "shots": list(job.shots), "seeds": seeds,
                     "sources": counts, "lr_factor": {str(k): job.protocol(k).lr_factor for k in job.shots}},
        "notes": notes, "model": job.runner.model, "cells": len(rows),
        "settings": job.settings, "data": job.data.provenance(resolve_tasks(job.tasks)),
        "provenance": machine,
    }
    write_report(out / REPORT, report)
    return report


def _describe(same: list[Method], job: GridJob) -> str:
    """A table row's method in words; `same`: its cells' methods (one per source posterior)."""
    method = same[0]
    prior = "with the prior" if method.prior_used(job.prior) else "no prior"
    where = ", ".join(m.path for m in same if m.path)
    words = method.method.summary + (f" ({where})" if where else "")
    if method.method.retrieves:
        words += f", {job.retrieval_measure} similarity, {job.retrieval_steps} steps on the k-shot subset"
    return words if not method.method.needs_source else f"{words}, {prior}"
