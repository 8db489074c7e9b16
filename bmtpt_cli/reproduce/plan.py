"""A paper table as a plan: the exact `bmtpt` runs that make it, in dependency order.

One source run per (source kind, posterior) feeds every row and target that starts from it; a single-target
block adapts each target task from it at every seed and then scores the prompts (`evaluate`); a multi-target
block adapts each benchmark's tasks at once; a few-shot block is one `bmtpt fewshot` grid per row (every k,
task and seed of the table; its paired statistics are the grid's own). At `--scale toy` the same plan runs on
the toy world: its model, its sources for the paper's, its four targets for every benchmark, short schedules.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmtpt_cli.data import toyworld
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.presets import preset_path, read_preset
from bmtpt_cli.reproduce.paper import PAPER_MODEL, ROWS, SOURCES, TABLES, PaperTable, RowSpec, SourceSpec

SCALES = ("paper", "toy")
BASE_PRESET = "paper"
TOY_PRESET = "toyworld"
TOY_MODEL = "toy"
TOY_BENCHMARK = "toyworld"
TOY_GLUE6 = tuple(next(n for n in toyworld.SOURCE_NAMES if n.startswith(f"toy_{family}_"))
                  for family in ("animal", "food", "tool", "mood", "place", "time"))
"""The toy world's stand-in for the paper's six sources: the first source of each of its six families."""
TOY_SCHEDULES = {
    # the posteriors of docs/toyworld.md's comparison: 300 SVGD steps, four examples per source per step
    "source": {"steps": 300, "warmup_steps": 10, "checkpoint_every": 100, "examples_per_task": 4},
    "adapt": {},  # the toyworld preset's: 60 steps of 16, dev every 20
    "fewshot": {},  # the toyworld preset's: 30 steps per cell, dev-selected
}
TOY_PARTICLES = 5  # the paper's M (the toyworld preset's demo posterior has 3)
NOT_FINGERPRINTED = frozenset({"device", "threads", "verbose", "progress_every", "resume", "force", "data_dir"})
"""Flags that do not change a run's numbers or its identity: a plan resumed with another value goes on."""


@dataclass
class Run:
    """One `bmtpt` command of a plan: its flags (settings field → value), what it reads and writes, and
    what it costs (optimisation sequences: steps × sequences per step, summed over its cells)."""

    name: str  # unique in the plan: source/…, adapt/…, evaluate/…, fewshot/…
    command: str  # source | adapt | evaluate | fewshot
    preset: str
    flags: dict[str, Any]
    produces: str  # the file or folder it writes (relative to the plan's folder)
    after: tuple[str, ...] = ()  # runs whose outputs it reads
    consumes: tuple[str, ...] = ()
    model: str = PAPER_MODEL
    train_sequences: int = 0
    steps: int = 0  # optimisation steps (a few-shot grid: summed over its cells; per-task sources: over the tasks)
    cells: int = 1  # few-shot cells (methods × k × tasks × seeds × posteriors); 1 for other runs
    stage: int = 0  # 1 + the latest stage of what it reads: runs of one stage may run in parallel
    row: str | None = None  # the row it makes (None: a source run, shared)
    block: str | None = None
    posterior: int = 0  # the source posterior an adapt / evaluate run starts from (its replicate's cluster)
    seed: int = 0

    def argv(self, root: Path | None = None) -> list[str]:
        """The command line, `bmtpt COMMAND --preset P --flag value …`, with paths under `root`."""
        words = ["bmtpt", self.command, "--preset", self.preset]
        for name, value in self.flags.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                words.append(flag if value else "--no-" + name.replace("_", "-"))
            else:
                words += [flag, _text(value, root if name in PATH_FLAGS else None)]
        return words

    def preset_values(self) -> dict[str, Any]:
        """The values its preset gives this command (its table over the shared keys), as parsed now."""
        data = _preset_data(self.preset)
        return {k: v for k, v in data.items() if not isinstance(v, dict)} | data.get(self.command, {})

    def fingerprint(self) -> str:
        """What makes the run's numbers: command, preset (its values, so an edited preset counts as a change) and
        flags (less `NOT_FINGERPRINTED`)."""
        kept = {k: v for k, v in self.flags.items() if k not in NOT_FINGERPRINTED}
        text = json.dumps([self.command, self.preset, self.preset_values(), kept], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def settings_flags(self, root: Path) -> dict[str, Any]:
        """The flags as the command's settings take them (lists comma-joined, paths under `root`)."""
        return {name: (value if isinstance(value, (bool, int, float)) else _text(value, root if name in PATH_FLAGS else None))
                for name, value in self.flags.items()}


PATH_FLAGS = frozenset({"out", "init", "prompts", "particles", "multitask", "source_prompts"})


def _text(value: Any, root: Path | None) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v, root) for v in value)
    text = str(value)
    if root is not None and not isinstance(value, (int, float)) and text != "random":  # a count, `--init random`: no paths
        prefix = "retrieve:" if text.startswith("retrieve:") else ""
        text = prefix + str(root / text[len(prefix):])
    return text


@dataclass
class Plan:
    """A table's runs at one scale, and what each row of the table needs."""

    table: PaperTable
    scale: str
    seeds: int
    posteriors: int
    rows: tuple[str, ...]  # the rows asked for, in the table's order
    tasks: tuple[str, ...]  # the target tasks (paper names at paper scale, toy names at toy scale)
    benchmarks: tuple[tuple[str, tuple[str, ...]], ...]
    blocks: tuple[str, ...]  # the table's blocks kept (all but the k values --shots leaves out)
    runs: list[Run] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # row → why it does not run
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # command → flags set on every run

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)

    def to_dict(self, root: Path | None = None) -> dict:
        """The plan as `plan.json` records it (and `--dry-run --json` prints it)."""
        return {
            "table": self.table.name, "scale": self.scale, "seeds": self.seeds, "posteriors": self.posteriors,
            "rows": list(self.rows), "tasks": list(self.tasks), "blocks": list(self.blocks), "skipped": self.skipped,
            "runs": [{
                "name": r.name, "command": r.command, "argv": r.argv(root), "stage": r.stage, "after": list(r.after),
                "consumes": list(r.consumes), "produces": r.produces, "model": r.model, "cells": r.cells,
                "steps": r.steps, "train_sequences": r.train_sequences, "fingerprint": r.fingerprint(), "row": r.row, "block": r.block,
            } for r in self.runs],
        }


def build_plan(
    table_name: str, *, scale: str = "paper", seeds: int = 3, posteriors: int = 1, rows: list[str] | None = None,
    tasks: list[str] | None = None, shots: list[int] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Expand a table into its runs. `rows`, `tasks` and `shots` trim it to part of the table (a row of one, a
    column, a k); `overrides` (command → flags, `all` for every command) are set on every run they name."""
    if table_name not in TABLES:
        raise BmtptError(f"unknown table '{table_name}': use one of {', '.join(TABLES)}")
    if scale not in SCALES:
        raise BmtptError(f"unknown --scale '{scale}': use paper or toy")
    if seeds < 1 or posteriors < 1:
        raise BmtptError("--seeds and --posteriors count runs: give 1 or more")
    table = TABLES[table_name]
    chosen = _chosen_rows(table, rows)
    benchmarks = ((TOY_BENCHMARK, toyworld.TARGET_NAMES),) if scale == "toy" else table.benchmarks
    benchmarks = _chosen_tasks(benchmarks, tasks)
    blocks = _chosen_shots(table, shots)
    plan = Plan(table, scale, seeds, posteriors, chosen, tuple(t for _, ts in benchmarks for t in ts), benchmarks,
                tuple(block.name for block in blocks), overrides=_check_overrides(overrides or {}))
    for key in chosen:
        reason = _cannot_run(ROWS[key], scale)
        if reason:
            plan.skipped[key] = reason
    runnable = [key for key in chosen if key not in plan.skipped]
    sources = {}
    for block in blocks:
        for key in block.rows:
            if key in runnable and ROWS[key].source and ROWS[key].source not in sources:
                sources[ROWS[key].source] = _source_runs(plan, SOURCES[ROWS[key].source])
    for block in blocks:
        if block.kind in ("single", "multi"):
            for key in (k for k in block.rows if k in runnable):
                _adaptation_runs(plan, block, ROWS[key], sources.get(ROWS[key].source, []))
    fewshot_rows = {}
    for block in blocks:
        if block.kind == "fewshot":
            for key in (k for k in block.rows if k in runnable):
                fewshot_rows.setdefault(key, []).extend(block.shots)
    for key, ks in fewshot_rows.items():
        _fewshot_run(plan, ROWS[key], ks, sources.get(ROWS[key].source, []))
    _stages(plan)
    return plan


def _chosen_rows(table: PaperTable, rows: list[str] | None) -> tuple[str, ...]:
    keys = table.row_keys()
    if not rows:
        return keys
    unknown = [r for r in rows if r not in keys]
    if unknown:
        raise BmtptError(f"{table.name} has no row {', '.join(map(repr, unknown))}: use {', '.join(keys)}")
    return tuple(k for k in keys if k in rows)


def _chosen_tasks(benchmarks, tasks: list[str] | None):
    if not tasks:
        return benchmarks
    every = [t for _, ts in benchmarks for t in ts]
    unknown = [t for t in tasks if t not in every]
    if unknown:
        raise BmtptError(f"the table has no task column {', '.join(map(repr, unknown))} at this scale: use {', '.join(every)}")
    return tuple((b, tuple(t for t in ts if t in tasks)) for b, ts in benchmarks if any(t in tasks for t in ts))


def _chosen_shots(table: PaperTable, shots: list[int] | None):
    if not shots:
        return table.blocks
    every = sorted({k for block in table.blocks for k in block.shots})
    if not every:
        raise BmtptError(f"--shots trims a few-shot table; {table.name} has no few-shot block (table2 has)")
    unknown = [k for k in shots if k not in every]
    if unknown:
        raise BmtptError(f"{table.name} has no k = {', '.join(map(str, unknown))}: use {', '.join(map(str, every))}")
    return tuple(b for b in table.blocks if not b.shots or set(b.shots) & set(shots))


def _check_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from bmtpt_cli.settings import SETTINGS_BY_COMMAND

    for command, flags in overrides.items():
        if command != "all" and command not in ("source", "adapt", "evaluate", "fewshot"):
            raise BmtptError(f"--set {command}.…: a plan runs source, adapt, evaluate and fewshot (or all)")
        for name in flags:
            known = [c for c in ("source", "adapt", "evaluate", "fewshot") if name in SETTINGS_BY_COMMAND[c].model_fields]
            if not known or (command != "all" and command not in known):
                where = f"{command}" if command != "all" else "any command of a plan"
                raise BmtptError(f"--set {command}.{name}: '{name}' is not a setting of {where} (see `bmtpt COMMAND --help`)")
            if name in ("out", "force", "resume", "init", "prompts", "particles", "multitask", "source_prompts", "seed", "tasks", "methods"):
                raise BmtptError(f"--set {command}.{name}: the plan sets {name} itself (it chains the runs' files)")
    return overrides


def _cannot_run(row: RowSpec, scale: str) -> str | None:
    if row.method is None:
        return row.missing or "not implemented in bmtpt"
    if scale == "toy":
        model = _model({}, row.preset)
        if model != PAPER_MODEL:
            return f"the toy world has one model size ('toy'), so the {model} row has no toy counterpart"
    return None


@functools.lru_cache(maxsize=64)
def _read_preset(path: Path, modified_ns: int) -> dict[str, Any]:
    return read_preset(path)


def _preset_data(preset: str) -> dict[str, Any]:
    """A preset's parsed TOML, read once per file version (a plan asks for it once per run)."""
    path = preset_path(preset)
    return _read_preset(path, path.stat().st_mtime_ns)


def _preset_value(preset: str, command: str | None, key: str) -> Any:
    data = _preset_data(preset)
    if command and key in data.get(command, {}):
        return data[command][key]
    return data.get(key)


def _preset_differences(preset: str, command: str) -> dict[str, Any]:
    """What a row's paper preset sets for `command` beyond the base preset `paper` (its ablation: particles
    10, source sampling, no prior), the flags that carry the ablation to the toy world."""
    mine, base = _preset_data(preset), _preset_data(BASE_PRESET)
    def values(data):
        return {k: v for k, v in data.items() if not isinstance(v, dict)} | data.get(command, {})
    theirs = values(base)
    return {k: v for k, v in values(mine).items() if k not in ("tasks", "model") and theirs.get(k) != v}


def _flags(plan: Plan, command: str, preset: str, own: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The preset and flags of a run: at paper scale the row's preset; at toy scale the toy world's preset,
    the toy schedules and the row preset's ablation values; then the plan's overrides; then the run's own."""
    flags: dict[str, Any] = {}
    if plan.scale == "toy":
        flags |= {"model": TOY_MODEL} | TOY_SCHEDULES.get(command, {})
        flags |= _preset_differences(preset, command)
        preset = TOY_PRESET
    from bmtpt_cli.settings import SETTINGS_BY_COMMAND

    fields = SETTINGS_BY_COMMAND[command].model_fields
    flags |= {k: v for k, v in plan.overrides.get("all", {}).items() if k in fields} | plan.overrides.get(command, {})
    flags |= own
    return preset, flags


def _source_runs(plan: Plan, spec: SourceSpec) -> list[Run]:
    """One source run per posterior (seeds 0 … posteriors − 1) of a source kind."""
    paper_tasks = list(_preset_value(spec.preset, "source", "tasks") or [])
    if plan.scale == "toy":
        tasks = list(toyworld.SOURCE_NAMES) if len(paper_tasks) == len(toyworld.SOURCE_NAMES) else list(TOY_GLUE6)
    else:
        tasks = paper_tasks
    kind = {"multitask": {"particles": 1}, "per-task": {"per_task": True}}.get(spec.kind, {})
    if plan.scale == "toy" and spec.kind == "posterior":
        kind = {"particles": _preset_differences(spec.preset, "source").get("particles", TOY_PARTICLES)}
    runs = []
    for p in range(plan.posteriors):
        out = f"sources/{spec.key}-p{p}" + ("" if spec.kind == "per-task" else ".safetensors")
        preset, flags = _flags(plan, "source", spec.preset, {"tasks": tasks, **kind, "seed": p, "out": out})
        run = Run(f"source/{spec.key}-p{p}", "source", preset, flags, out, model=_model(flags, spec.preset))
        run.train_sequences = _source_sequences(run)
        run.steps = int(_resolved(run, "steps")) * (len(tasks) if spec.kind == "per-task" else 1)
        plan.runs.append(run)
        runs.append(run)
    return runs


def _model(flags: dict[str, Any], preset: str) -> str:
    return flags.get("model") or _preset_value(preset, None, "model") or PAPER_MODEL


def _resolved(run: Run, name: str) -> Any:
    """A setting of a run as it will resolve (flags > preset > defaults), read without validating paths."""
    from bmtpt_cli.settings import SETTINGS_BY_COMMAND

    if name in run.flags:
        return run.flags[name]
    value = _preset_value(run.preset, run.command, name)
    if value is not None:
        return value
    return SETTINGS_BY_COMMAND[run.command].model_fields[name].default


def _source_sequences(run: Run) -> int:
    steps, per_task = int(_resolved(run, "steps")), int(_resolved(run, "examples_per_task"))
    tasks = len(run.flags["tasks"])
    if run.flags.get("per_task"):
        return tasks * steps * per_task  # one prompt per task, each its own run
    drawn = _resolved(run, "sample_tasks") or tasks
    return steps * int(_resolved(run, "particles")) * min(int(drawn), tasks) * per_task


def _init_of(row: RowSpec, source: Run | None) -> tuple[str, dict[str, Any]]:
    """The adapt/evaluate flags that start a row from its source run."""
    if source is None:
        return "random", {"init": "random"}
    if row.method == "spot":
        return source.produces, {"init": "retrieve:" + source.produces}
    return source.produces, {"init": source.produces}


def _row_preset(plan: Plan, row: RowSpec) -> str:
    return plan.table.preset if row.preset == BASE_PRESET else row.preset


def _adaptation_runs(plan: Plan, block, row: RowSpec, sources: list[Run]) -> None:
    """Single-target: one adapt + evaluate per (target task, posterior, seed); multi-target: per benchmark."""
    row_preset = _row_preset(plan, row)
    targets = ([(task, [task]) for task in plan.tasks] if block.kind == "single"
               else [(benchmark, list(ts)) for benchmark, ts in plan.benchmarks])
    for target, tasks in targets:
        for p, source in enumerate(sources or [None]):
            for seed in range(plan.seeds):
                name = f"{block.name}/{row.key}/{target}/p{p}-s{seed}"
                consumed, init = _init_of(row, source)
                preset, flags = _flags(plan, "adapt", row_preset, {
                    "tasks": tasks, "method": row.method, **init, "seed": seed, "out": f"runs/{name}/prompts.safetensors"})
                model = _model(flags, row_preset)
                adapt = Run(f"adapt/{name}", "adapt", preset, flags, flags["out"], model=model, row=row.key, block=block.name,
                            after=(source.name,) if source else (), consumes=(consumed,) if source else (),
                            posterior=p, seed=seed)
                adapt.train_sequences = _adapt_sequences(adapt, row)
                adapt.steps = int(_resolved(adapt, "steps"))
                epreset, eflags = _flags(plan, "evaluate", row_preset, {"prompts": adapt.produces, "out": f"runs/{name}/results.json"})
                evaluate = Run(f"evaluate/{name}", "evaluate", epreset, eflags, eflags["out"], model=model, row=row.key,
                               block=block.name, after=(adapt.name,), consumes=(adapt.produces,), posterior=p, seed=seed)
                plan.runs += [adapt, evaluate]


def _adapt_sequences(run: Run, row: RowSpec) -> int:
    sequences = int(_resolved(run, "steps")) * int(_resolved(run, "batch_size"))
    if row.method == "spot":  # the task embedding: retrieval_steps of prompt tuning on the target first
        sequences += int(_resolved(run, "retrieval_steps")) * int(_resolved(run, "batch_size")) * len(run.flags["tasks"])
    return sequences


def _fewshot_run(plan: Plan, row: RowSpec, shots: list[int], sources: list[Run]) -> None:
    """One `bmtpt fewshot` grid for a row: every k, task and seed, crossed with every posterior."""
    name, row_preset = f"fewshot/{row.key}", _row_preset(plan, row)
    source_flag = {"bmtpt": "particles", "bmtpt-noprior": "particles", "bmtpt-ensemble": "particles",
                   "multitask": "multitask", "spot": "source_prompts", "attempt": "source_prompts"}.get(row.method)
    own = {"tasks": list(plan.tasks), "methods": [row.method], "shots": sorted(set(shots)), "seeds": plan.seeds}
    if source_flag:
        own[source_flag] = [run.produces for run in sources]
    preset, flags = _flags(plan, "fewshot", row_preset, own | {"out": f"runs/{name}"})
    model = _model(flags, row_preset)
    run = Run(name, "fewshot", preset, flags, flags["out"], model=model, row=row.key, block="fewshot",
              after=tuple(r.name for r in sources), consumes=tuple(r.produces for r in sources))
    posteriors = max(1, len(sources))
    run.cells = len(flags["shots"]) * len(plan.tasks) * plan.seeds * posteriors
    steps, batch = int(_resolved(run, "steps")), int(_resolved(run, "batch_size"))
    run.steps = steps * run.cells
    per_task = sum(min(batch, k) for k in flags["shots"])  # a cell's batch: its k examples, at most batch_size
    run.train_sequences = steps * per_task * len(plan.tasks) * plan.seeds * posteriors
    if row.method == "spot":
        run.train_sequences += int(_resolved(run, "retrieval_steps")) * per_task * len(plan.tasks) * plan.seeds * posteriors
    plan.runs.append(run)


def _stages(plan: Plan) -> None:
    stage = {}
    for run in plan.runs:  # runs are appended after what they read
        run.stage = 1 + max((stage[name] for name in run.after), default=0)
        stage[run.name] = run.stage
