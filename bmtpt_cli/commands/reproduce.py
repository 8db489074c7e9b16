"""`bmtpt reproduce TABLE`: one of the paper's tables as a plan of bmtpt runs — printed and costed
(`--dry-run`), or run with resume, then written in the paper's layout with the paper's numbers beside ours."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from bmtpt_cli.commands.display import user_errors
from bmtpt_cli.console import console, err_console
from bmtpt_cli.errors import BmtptError

TABLE_HELP = "table1 (GLUE and SuperGLUE, single- and multi-target), table2 (few-shot), table3 (ablations) or table4 (MRQA and Others)."
SET_HELP = ("Set a setting on every run of a command: COMMAND.KEY=VALUE (COMMAND: source, adapt, evaluate, fewshot or all), "
            "e.g. --set source.steps=1000 --set all.grad_checkpointing=true; repeatable. It is part of each run's settings, "
            "so a plan resumed with another value is refused.")


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def reproduce_command(
    table: Annotated[str, typer.Argument(help=TABLE_HELP, show_default=False)],
    rows: Annotated[Optional[str], typer.Option(help="Only these rows, comma-separated (a row of one: --rows bmtpt); --dry-run lists them.")] = None,
    tasks: Annotated[Optional[str], typer.Option(help="Only these target task columns, comma-separated (at --scale toy: toy_* targets).")] = None,
    shots: Annotated[Optional[str], typer.Option(help="table2: only these k values, comma-separated (of 4, 16, 32).")] = None,
    scale: Annotated[str, typer.Option(help="paper: the paper's model, tasks and schedules; toy: the same plan on the toy world (offline, minutes on a CPU).")] = "paper",
    seeds: Annotated[int, typer.Option(help="Seeds per row and target (the paper: 3); each seed its own init and k-shot subset.")] = 3,
    posteriors: Annotated[int, typer.Option(help="Independent source runs per source kind (seeds 0 … N−1), each crossed with every seed; the paired intervals are clustered by posterior.")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="Folder of the plan: sources/, runs/, state/, plan.json and table.md/.csv/.json (default reproduce-TABLE, or reproduce-TABLE-toy).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (every command, what it reads and writes, its optimisation steps and cost) and validate its settings and task names; run nothing, read no data or model.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: the plan as JSON (for launchers).")] = False,
    step_seconds: Annotated[Optional[float], typer.Option(help="Seconds of one adaptation step of 32 sequences on the scale's model (t5-base or toy), for the cost estimate.", min=0.0)] = None,
    time_steps: Annotated[int, typer.Option(help="With --dry-run and no --step-seconds: time this many steps on the present device (the model's shape with random weights; nothing is downloaded) for the cost estimate; 0: no estimate.", min=0)] = 0,
    only: Annotated[Optional[str], typer.Option(help="Run only these runs of the plan (names from --dry-run, comma-separated), e.g. to spread one stage over machines sharing --out; their inputs must be finished.")] = None,
    settings_override: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP, metavar="COMMAND.KEY=VALUE")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device of every run (auto, cpu, cuda, cuda:N); not part of a run's settings.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Read task data from this folder in every run (see bmtpt tasks --layout TASK).")] = None,
) -> None:
    """Reproduce one of the paper's tables: expand it into source / adapt / evaluate / fewshot runs, run them
    (a finished run is skipped, a changed setting refused), and write the table with the paper's numbers."""
    from bmtpt_cli.reproduce.plan import build_plan

    with user_errors():
        overrides = parse_overrides(settings_override or [])
        common = {k: v for k, v in (("device", device), ("data_dir", str(data_dir) if data_dir else None)) if v is not None}
        if common:
            overrides["all"] = overrides.get("all", {}) | common
        plan = build_plan(table, scale=scale, seeds=seeds, posteriors=posteriors, rows=_split(rows), tasks=_split(tasks),
                          shots=[_int(k, "--shots") for k in _split(shots) or []] or None, overrides=overrides)
        root = out or Path(f"reproduce-{table}" + ("-toy" if scale == "toy" else ""))
        validate(plan, root)
        if dry_run:
            estimate = cost_estimate(plan, step_seconds, time_steps)
            if as_json:
                console.print_json(json.dumps(plan.to_dict(root) | {"estimate": _estimate_dict(estimate)}))
            else:
                print_plan(plan, root, estimate)
            return
        if as_json:
            raise BmtptError("--json prints the plan: give it with --dry-run")
        run_plan(plan, root, _split(only))


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BmtptError(f"{flag} takes whole numbers, comma-separated: '{text}' is not one") from None


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`--set COMMAND.KEY=VALUE` items → {command: {key: value}} (values as text; the settings parse them)."""
    found: dict[str, dict[str, str]] = {}
    for item in items:
        target, equals, value = item.partition("=")
        command, dot, key = target.partition(".")
        if not equals or not dot or not key:
            raise BmtptError(f"--set '{item}': write COMMAND.KEY=VALUE, e.g. --set source.steps=1000")
        found.setdefault(command.strip(), {})[key.strip().replace("-", "_")] = value.strip()
    return found


def validate(plan, root: Path) -> None:
    """Every run's settings resolve (types, bounds, choices, presets) and its task and method names exist; no
    data, model or artifact is read. Errors name the run."""
    from bmtpt_cli.data.registry import resolve_tasks
    from bmtpt_cli.methods.registry import method_named
    from bmtpt_cli.settings import resolve_settings

    for run in plan.runs:
        try:
            settings = resolve_settings(run.command, run.preset, run.settings_flags(root))
            resolve_tasks(getattr(settings, "tasks", None) or [])
            methods = settings.methods if run.command == "fewshot" else [settings.method] if run.command == "adapt" else []
            for name in methods:
                method_named(name)
        except BmtptError as exc:
            raise BmtptError(f"run {run.name} of the plan: {exc}") from None


def cost_estimate(plan, step_seconds: float | None, time_steps: int):
    """The plan's cost from --step-seconds, or from --time-steps steps timed here; None without either."""
    from bmtpt_cli.reproduce.cost import estimate, time_step
    from bmtpt_cli.reproduce.plan import PAPER_MODEL, TOY_MODEL

    model = TOY_MODEL if plan.scale == "toy" else PAPER_MODEL
    if step_seconds is not None:
        return estimate(plan, step_seconds, model=model)
    if not time_steps:
        return None
    device = plan.overrides.get("all", {}).get("device", "cpu" if plan.scale == "toy" else "auto")
    length = TOY_INPUT_LENGTH if plan.scale == "toy" else PAPER_INPUT_LENGTH
    prompt_length = 8 if plan.scale == "toy" else 100
    with err_console.status(f"timing {time_steps} steps of {model} on {device} …"):
        seconds, where = time_step(model, device=device, prompt_length=prompt_length, input_length=length, steps=time_steps)
    return estimate(plan, seconds, model=model, measured_on=where)


PAPER_INPUT_LENGTH = 256  # the max source length: an upper end (most GLUE inputs are shorter)
TOY_INPUT_LENGTH = 24  # about the toy world's inputs (field, scene and question)


def _estimate_dict(estimate) -> dict | None:
    if estimate is None:
        return None
    return {"step_seconds": estimate.step_seconds, "model": estimate.model, "measured_on": estimate.measured_on,
            "total_hours": estimate.total_seconds / 3600, "per_run_hours": {k: v / 3600 for k, v in estimate.per_run.items()}}


def print_plan(plan, root: Path, estimate) -> None:
    """The plan for people: one line per run (stage, name, command), then the totals and the cost."""
    from bmtpt_cli.reproduce.cost import hours

    lines = [f"bmtpt reproduce {plan.table.name} at {plan.scale} scale: {len(plan.runs)} runs in {root}/ "
             f"(rows: {', '.join(k for k in plan.rows if k not in plan.skipped) or 'none'}; {len(plan.tasks)} target tasks; "
             f"{plan.seeds} seeds × {plan.posteriors} posterior(s))"]
    for key, reason in plan.skipped.items():
        lines.append(f"  row {key} not run: {reason}")
    current = None
    for run in sorted(plan.runs, key=lambda r: r.stage):  # stable: within a stage, the plan's order
        if run.stage != current:
            current = run.stage
            count = sum(r.stage == current for r in plan.runs)
            lines.append(f"stage {current} ({count} runs, independent of each other: they may run in parallel)" if count > 1
                         else f"stage {current} (1 run)")
        cost = f" · ≈ {hours(estimate.per_run[run.name])}" if estimate else ""
        cells = f" · {run.cells} cells" if run.command == "fewshot" else ""
        work = f"{run.steps:,} steps, {run.train_sequences:,} training sequences" if run.steps else "scoring only"
        lines.append(f"  {run.name}: {work}{cells}{cost}")
        lines.append(f"    {' '.join(run.argv(root))}")
        if run.consumes:
            lines.append(f"    reads {', '.join(str(root / c) for c in run.consumes)}")
        lines.append(f"    writes {root / run.produces}")
    counts = {command: sum(r.command == command for r in plan.runs) for command in ("source", "adapt", "evaluate", "fewshot")}
    cells = sum(r.cells for r in plan.runs if r.command == "fewshot")
    lines.append("runs: " + ", ".join(f"{n} {c}" for c, n in counts.items() if n) + (f" ({cells} few-shot cells)" if cells else ""))
    lines.append(f"training sequences: {sum(r.train_sequences for r in plan.runs):,} (steps × sequences per step)")
    if estimate is None:
        lines.append("cost: give --step-seconds S (one adaptation step of 32 sequences on the scale's model) or --time-steps N to estimate it")
    else:
        stages = estimate.stage_seconds(plan)
        wall = sum(longest for _, longest in stages.values())
        lines.append(f"cost: ≈ {estimate.total_seconds / 3600:.3g} device-hours at "
                     f"{estimate.step_seconds:.4g} s per step of 32 on {estimate.model} ({estimate.measured_on}); with one device "
                     f"per run of a stage, ≈ {hours(wall)} of wall time. Scoring is not counted; other model sizes are scaled "
                     "by their non-embedding parameters.")
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def run_plan(plan, root: Path, only: list[str] | None) -> None:
    """Run the plan's runs in order (or `only` these), skipping finished ones; then write the table."""
    from bmtpt_cli.commands import adapt, evaluate, fewshot, source
    from bmtpt_cli.commands.options import run_command
    from bmtpt_cli.reproduce.state import check_no_mixing, is_finished, mark_finished, restart_flags
    from bmtpt_cli.runtime.files import write_text_atomic

    runners = {"source": source.run, "adapt": adapt.run, "evaluate": evaluate.run, "fewshot": fewshot.run}
    names = {run.name for run in plan.runs}
    if only:
        unknown = [name for name in only if name not in names]
        if unknown:
            raise BmtptError(f"--only {unknown[0]}: no such run in this plan (bmtpt reproduce {plan.table.name} --dry-run lists them)")
    if root.exists() and not root.is_dir():
        raise BmtptError(f"--out '{root}' is a file: give a folder for the plan")
    check_no_mixing(root, plan)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "plan.json", json.dumps(plan.to_dict(root), indent=2) + "\n")
    chosen = [run for run in plan.runs if not only or run.name in only]
    for number, run in enumerate(chosen, 1):
        if is_finished(root, run):
            err_console.print(f"[{number}/{len(chosen)}] {run.name}: finished, kept", markup=False, highlight=False)
            continue
        waiting = [name for name in run.after if not is_finished(root, plan.run(name))]
        if waiting:
            raise BmtptError(f"run {run.name} reads the output of {waiting[0]}, which is not finished: run it first "
                             f"(bmtpt reproduce {plan.table.name} --only {waiting[0]}, same options)")
        flags = run.settings_flags(root) | restart_flags(root, run)
        err_console.print(f"[{number}/{len(chosen)}] {run.name}: {' '.join(run.argv(root))}"
                          + (" (resumed)" if flags.get("resume") else ""), markup=False, highlight=False, soft_wrap=True)
        (root / run.produces).parent.mkdir(parents=True, exist_ok=True)  # the run's own folder: sources/, runs/…/
        started = time.perf_counter()
        try:
            run_command(run.command, runners[run.command], run.preset, flags)
        except BmtptError as exc:
            raise BmtptError(f"run {run.name} failed: {exc} — fix it and rerun the same command (finished runs are kept)") from None
        mark_finished(root, run, time.perf_counter() - started)
    write_table(plan, root)


def write_table(plan, root: Path) -> None:
    """table.md, table.csv and table.json from the finished runs; table.md is printed."""
    from bmtpt_cli.reproduce.table import build_tables, table_csv, table_json, table_markdown
    from bmtpt_cli.runtime.files import write_text_atomic

    blocks = build_tables(root, plan)
    markdown = table_markdown(plan, blocks)
    write_text_atomic(root / "table.csv", table_csv(plan, blocks))
    write_text_atomic(root / "table.json", json.dumps(table_json(plan, blocks), indent=2) + "\n")
    write_text_atomic(root / "table.md", markdown)
    console.print(markdown, markup=False, highlight=False, soft_wrap=True)
    err_console.print(f"wrote {root / 'table.md'}, table.csv and table.json", markup=False, highlight=False)
