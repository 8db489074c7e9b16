"""The split protocol reproduces the baselines' dev/test examples exactly (ATTEMPT/MPT, SPEC §7).

ATTEMPT and MPT permute with `torch.randperm(n, generator=torch.Generator().manual_seed(42))` and
`dataset.select(indices)`: rule S takes the first ⌊n/2⌋ of the permuted official validation set as
dev and the rest as test; rule L takes the first 1,000 of the permuted training set as dev, the rest
as train. Both keep permutation order. The expected lists here are computed with a literal
`torch.randperm` call, not through `bmtpt_cli.data.splits`.

The last tests read the real files under shared/data in place (skipped when absent): the expected
rows are read from the files independently of the package's loaders.
"""

import json
from pathlib import Path

import pytest
import torch

from bmtpt_cli.data import splits
from bmtpt_cli.data.glue import GLUE_TASKS
from bmtpt_cli.data.superglue import SUPERGLUE_TASKS

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def baseline_permutation(n: int) -> list[int]:
    """The baselines' order of n rows: torch.randperm seeded with 42 in a fresh generator."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(42)).tolist()


def rows(n: int) -> list[dict]:
    return [{"row": i} for i in range(n)]


# --- synthetic: always run -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 40, 56, 277])
def test_small_rule_halves_the_torch_randperm_of_validation(n):
    official = {"train": rows(3), "validation": rows(n)}
    dev = splits.protocol_split(splits.SMALL, "validation", official.__getitem__)
    test = splits.protocol_split(splits.SMALL, "test", official.__getitem__)
    perm = baseline_permutation(n)
    assert dev == [official["validation"][i] for i in perm[: n // 2]]
    assert test == [official["validation"][i] for i in perm[n // 2 :]]
    assert splits.protocol_split(splits.SMALL, "train", official.__getitem__) == official["train"]  # file order


@pytest.mark.parametrize("n,dev_size", [(12, 5), (2490, 1000)])
def test_large_rule_takes_dev_from_the_torch_randperm_of_train(n, dev_size, monkeypatch):
    monkeypatch.setattr(splits, "LARGE_DEV_SIZE", dev_size)
    official = {"train": rows(n), "validation": rows(4)}
    perm = baseline_permutation(n)
    dev = splits.protocol_split(splits.LARGE, "validation", official.__getitem__)
    train = splits.protocol_split(splits.LARGE, "train", official.__getitem__)
    assert dev == [official["train"][i] for i in perm[:dev_size]]
    assert train == [official["train"][i] for i in perm[dev_size:]]
    assert splits.protocol_split(splits.LARGE, "test", official.__getitem__) == official["validation"]


def test_shuffled_is_the_baselines_permutation():
    assert splits.shuffled(list(range(100))) == baseline_permutation(100)
    assert splits.shuffled(list("abcdefgh"), seed=7) == [
        "abcdefgh"[i] for i in torch.randperm(8, generator=torch.Generator().manual_seed(7)).tolist()
    ]
    assert splits.shuffled([]) == []


# --- the real files in shared/data, read in place --------------------------------------------------


def tsv_rows(path: Path, header: bool = True) -> list[list[str]]:
    """Tab-split lines of a GLUE TSV (quoting off, BOM dropped), without the header."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    lines = [line.split("\t") for line in lines if line]
    return lines[1:] if header else lines


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _glue_sources(folder: str, columns: list[str], task: str) -> list[str]:
    path = SHARED_DATA / "glue" / folder / "dev.tsv"
    if folder == "CoLA":  # no header: the sentence is column 3
        return [f"cola sentence: {row[3]}" for row in tsv_rows(path, header=False)]
    head, *body = tsv_rows(path, header=False)
    head[0] = head[0].lstrip("\ufeff")
    index = [head.index(c) for c in columns]
    names = {"RTE": ("sentence1", "sentence2"), "MRPC": ("sentence1", "sentence2")}[folder]
    return [f"{task} " + " ".join(f"{n}: {row[i]}" for n, i in zip(names, index)) for row in body]


def _superglue_sources(folder: str, fields: tuple[str, ...], task: str) -> list[str]:
    objects = jsonl_rows(SHARED_DATA / "superglue" / folder / "val.jsonl")
    return [f"{task} " + " ".join(f"{f}: {o[f]}" for f in fields) for o in objects]


OFFICIAL_VALIDATION = {  # task -> (its registry, the official validation rows' expected sources, in file order)
    "rte": (GLUE_TASKS, lambda: _glue_sources("RTE", ["sentence1", "sentence2"], "rte")),
    "mrpc": (GLUE_TASKS, lambda: _glue_sources("MRPC", ["#1 String", "#2 String"], "mrpc")),
    "cola": (GLUE_TASKS, lambda: _glue_sources("CoLA", [], "cola")),
    "boolq": (SUPERGLUE_TASKS, lambda: _superglue_sources("BoolQ", ("question", "passage"), "boolq")),
    "cb": (SUPERGLUE_TASKS, lambda: _superglue_sources("CB", ("premise", "hypothesis"), "cb")),
    "wic": (SUPERGLUE_TASKS, lambda: _superglue_sources("WiC", ("sentence1", "sentence2", "word"), "wic")),
}
OFFICIAL_SIZES = {"rte": 277, "mrpc": 408, "cola": 1043, "boolq": 3270, "cb": 56, "wic": 638}

needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "glue").is_dir() or not (SHARED_DATA / "superglue").is_dir(), reason="shared/data is absent"
)


@needs_shared
@pytest.mark.parametrize("name", sorted(OFFICIAL_VALIDATION))
def test_shared_data_dev_and_test_are_the_baselines_halves(name):
    registry, official_sources = OFFICIAL_VALIDATION[name]
    official = official_sources()
    n = len(official)
    assert n == OFFICIAL_SIZES[name]
    perm = baseline_permutation(n)
    dev = [e.source for e in registry[name].examples("validation", data_dir=SHARED_DATA)]
    test = [e.source for e in registry[name].examples("test", data_dir=SHARED_DATA)]
    assert dev == [official[i] for i in perm[: n // 2]]
    assert test == [official[i] for i in perm[n // 2 :]]
