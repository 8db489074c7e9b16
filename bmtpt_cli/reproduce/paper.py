"""The paper's tables (SPEC §6) as data: each table's blocks (single-target, multi-target, a k of the
few-shot grid), its rows (a transfer method, with the source run and preset it needs) and the paper's
numbers where SPEC §6 states them.

A number the paper prints but SPEC §6 does not state is left out (shown as "—"): add it to `PAPER_NUMBERS`
with its table and page, never from memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GLUE = ("mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola")
SUPERGLUE = ("multirc", "boolq", "wic", "wsc", "cb")
MRQA = ("nq", "hotpotqa", "searchqa", "newsqa")
OTHERS = ("winogrande", "yelp_polarity", "scitail", "paws")
PAPER_MODEL = "t5-base"


@dataclass(frozen=True)
class SourceSpec:
    """A source run the rows share: which preset, and whether it trains a posterior (`particles` from the
    preset), one multi-task prompt (`particles` 1) or one prompt per task (`per_task`)."""

    key: str  # its name in the plan (`source-<key>`)
    preset: str  # the paper-scale preset (presets/<preset>.toml)
    kind: str  # "posterior", "multitask" (M = 1) or "per-task"
    description: str


@dataclass(frozen=True)
class RowSpec:
    """One row of a table: a transfer method from a source run, under a preset."""

    key: str  # the row's name (`--rows`)
    label: str  # as the paper's table names it
    method: str | None  # the bmtpt method (adapt --method, fewshot --methods); None: not implemented here
    source: str | None  # the SourceSpec it starts from (None: random init)
    preset: str = "paper"  # the paper-scale preset of its adapt / evaluate / fewshot runs
    missing: str | None = None  # why the row cannot run (method None)


@dataclass(frozen=True)
class Block:
    """A part of a table with its own rows: `single` (one adapt run per target task), `multi` (one adapt
    run per benchmark, every task of it at once: one shared W, a_k and b_k per task) or `fewshot` (one
    `bmtpt fewshot` grid per row at every k of `shots`)."""

    name: str
    kind: str  # single | multi | fewshot
    rows: tuple[str, ...]  # RowSpec keys, in the table's order
    shots: tuple[int, ...] = ()


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables: blocks of rows over the benchmarks' task columns."""

    name: str  # table1 … table4
    title: str
    benchmarks: tuple[tuple[str, tuple[str, ...]], ...]  # (benchmark, its tasks) in column order
    blocks: tuple[Block, ...]
    note: str = ""
    preset: str = "paper"  # the preset of its rows that take the standard setting (RowSpec.preset "paper")
    paper: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (block, row, column) → points

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(task for _, tasks in self.benchmarks for task in tasks)

    def row_keys(self) -> tuple[str, ...]:
        """Every row of the table, in order of first appearance."""
        return tuple(dict.fromkeys(row for block in self.blocks for row in block.rows))


SOURCES = {spec.key: spec for spec in (
    SourceSpec("posterior", "paper", "posterior", "the source posterior: M = 5 particles over the six sources"),
    SourceSpec("multitask", "paper", "multitask", "vanilla multi-task transfer: one prompt (M = 1) over the six sources"),
    SourceSpec("per-task", "paper", "per-task", "one prompt per source task (SPoT's and ATTEMPT's source prompts)"),
    SourceSpec("posterior-particles10", "paper-particles10", "posterior", "the source posterior with M = 10 particles"),
    SourceSpec("posterior-sampling3of6", "paper-sampling-3of6", "posterior", "source task sampling: 3 of the 6 sources per step"),
    SourceSpec("posterior-sampling6of12", "paper-sampling-6of12", "posterior", "source task sampling: 6 of the 12 sources per step"),
    SourceSpec("posterior-t5-large", "paper-t5-large", "posterior", "the source posterior on T5-large"),
    SourceSpec("posterior-t5-3b", "paper-t5-3b", "posterior", "the source posterior on T5-3B"),
)}

MPT_MISSING = "MPT is not implemented in bmtpt (issue 22 is blocked on the paper's settings): the paper's number only"
ROWS = {row.key: row for row in (
    RowSpec("pt", "PT", "pt", None),
    RowSpec("multitask", "Multi-task PT", "multitask", "multitask"),
    RowSpec("spot", "SPoT", "spot", "per-task"),
    RowSpec("attempt", "ATTEMPT", "attempt", "per-task", preset="paper-attempt"),
    RowSpec("mpt", "MPT", None, None, missing=MPT_MISSING),
    RowSpec("bmtpt", "BMTPT", "bmtpt", "posterior"),
    RowSpec("bmtpt-noprior", "BMTPT without prior", "bmtpt-noprior", "posterior", preset="paper-noprior"),
    RowSpec("bmtpt-particles10", "BMTPT, 10 particles", "bmtpt", "posterior-particles10", preset="paper-particles10"),
    RowSpec("bmtpt-sampling3of6", "BMTPT, source sampling 3 of 6", "bmtpt", "posterior-sampling3of6", preset="paper-sampling-3of6"),
    RowSpec("bmtpt-sampling6of12", "BMTPT, source sampling 6 of 12", "bmtpt", "posterior-sampling6of12", preset="paper-sampling-6of12"),
    RowSpec("pt-t5-large", "PT (T5-large)", "pt", None, preset="paper-t5-large"),
    RowSpec("bmtpt-t5-large", "BMTPT (T5-large)", "bmtpt", "posterior-t5-large", preset="paper-t5-large"),
    RowSpec("pt-t5-3b", "PT (T5-3B)", "pt", None, preset="paper-t5-3b"),
    RowSpec("bmtpt-t5-3b", "BMTPT (T5-3B)", "bmtpt", "posterior-t5-3b", preset="paper-t5-3b"),
)}

BASELINES = ("pt", "multitask", "spot", "attempt", "mpt", "bmtpt")
"""The method rows of Tables 1, 2 and 4: vanilla PT, the multi-task transfer baselines and BMTPT."""


def _averages(block: str, row: str, glue: float, superglue: float | None = None) -> dict:
    found = {(block, row, "GLUE avg"): glue}
    if superglue is not None:
        found[(block, row, "SuperGLUE avg")] = superglue
    return found


TABLE1_BMTPT = dict(mnli=86.2, qqp=90.3, qnli=93.4, sst2=94.4, stsb=90.9, mrpc=87.2, rte=81.3, cola=86.6,
                    multirc=72.4, boolq=80.3, wic=67.4, wsc=67.3, cb=85.7)
PAPER_NUMBERS = {
    "table1": {
        **{("single-target", "bmtpt", task): value for task, value in TABLE1_BMTPT.items()},
        **_averages("single-target", "bmtpt", 88.7, 74.6),
        **_averages("single-target", "pt", 72.2, 57.8),
        **_averages("single-target", "mpt", 85.6, 74.1),
        **_averages("single-target", "multitask", 87.1, 72.3),
    },
    "table2": {
        **_averages("k=4", "pt", 54.7), **_averages("k=4", "mpt", 67.3), **_averages("k=4", "bmtpt", 70.7),
        **_averages("k=16", "pt", 56.7), **_averages("k=16", "mpt", 69.5), **_averages("k=16", "bmtpt", 76.4),
        **_averages("k=32", "pt", 55.1), **_averages("k=32", "mpt", 71.7), **_averages("k=32", "bmtpt", 79.0),
    },
    "table3": {
        **{("single-target", "bmtpt", task): value for task, value in TABLE1_BMTPT.items()},
        **_averages("single-target", "bmtpt", 88.7, 74.6),
        **_averages("single-target", "bmtpt-noprior", 87.8, 73.3),
        **_averages("single-target", "bmtpt-particles10", 88.4, 74.1),
    },
    "table4": {},
}

TABLES = {table.name: table for table in (
    PaperTable(
        "table1", "Table 1: adaptation to each GLUE and SuperGLUE task (single-target) and to each benchmark at once (multi-target)",
        (("glue", GLUE), ("superglue", SUPERGLUE)),
        (Block("single-target", "single", BASELINES), Block("multi-target", "multi", ("pt", "multitask", "mpt", "bmtpt"))),
        note="SPEC §6 states the single-target numbers only; the multi-target block has no paper numbers here.",
        paper=PAPER_NUMBERS["table1"],
    ),
    PaperTable(
        "table2", "Table 2: few-shot adaptation (k = 4, 16, 32 training examples per task, three seeds)",
        (("glue", GLUE), ("superglue", SUPERGLUE)),
        tuple(Block(f"k={k}", "fewshot", BASELINES, shots=(k,)) for k in (4, 16, 32)),
        note="SPEC §6 states the GLUE averages of PT, MPT and BMTPT; the learning rates are × 1/3 at k = 4 (SPEC §4).",
        paper=PAPER_NUMBERS["table2"],
    ),
    PaperTable(
        "table3", "Table 3: ablations (model size, source task sampling, 10 particles, no prior)",
        (("glue", GLUE), ("superglue", SUPERGLUE)),
        (Block("single-target", "single", (
            "bmtpt", "pt-t5-large", "bmtpt-t5-large", "pt-t5-3b", "bmtpt-t5-3b",
            "bmtpt-sampling3of6", "bmtpt-sampling6of12", "bmtpt-particles10", "bmtpt-noprior")),),
        note="SPEC §6 states the averages of BMTPT, 10 particles and without prior (it lists them with Table 1's).",
        paper=PAPER_NUMBERS["table3"],
    ),
    PaperTable(
        "table4", "Table 4: adaptation to the MRQA and Others tasks (single-target)",
        (("mrqa", MRQA), ("others", OTHERS)),
        (Block("single-target", "single", BASELINES),),
        note="SPEC §6 states no numbers of Table 4.",
        preset="paper-table4",
        paper=PAPER_NUMBERS["table4"],
    ),
)}
