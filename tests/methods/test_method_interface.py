"""A method is a unit (issue 21): one registry line adds a method that `adapt`, `evaluate`, `fewshot`
and `export` run without any other module knowing it; the prior is decided by the method; a file of
one method given where another is needed is refused naming both; a core config refuses nonsense."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from bmtpt_cli.artifacts import PARTICLES, common_metadata, load_prompts, save_particles
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods import registry
from bmtpt_cli.methods.base import NO_PRIOR, NO_SOURCE, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, read_init_file
from bmtpt_cli.methods.registry import METHODS, infer_method, method_named, resolve_method
from clihelpers import bmtpt, listing, one_line_error
from configs import adapt_config

TINY_D = 64
STARTS: list[int] = []


def _zero_start(request: StartRequest) -> TargetInit:
    STARTS.append(request.seed)
    return TargetInit(torch.zeros(request.prompt_length or 8, request.runner.d_model), None, "zero", "", None)


ZERO = TransferMethod(name="zero", summary="an all-zero prompt, no prior", source=NO_SOURCE, prior=NO_PRIOR,
                      start=_zero_start)


@pytest.fixture
def zero_method(monkeypatch):
    """The throwaway method, added through the registry alone."""
    monkeypatch.setitem(registry.METHODS, "zero", ZERO)
    STARTS.clear()
    return ZERO


def test_a_method_added_in_one_registry_line_runs_through_every_command(zero_method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    adapt = bmtpt("adapt", "--method", "zero", "--tasks", "demo_rte", "--steps", "2", "--eval-every", "1",
                  "--batch-size", "4", "--warmup-steps", "0", "--seed", "5", "--out", "zero.safetensors")
    assert adapt.exit_code == 0, adapt.output
    assert STARTS == [5]  # the method's own start, with the run's seed
    metadata = load_prompts(tmp_path / "zero.safetensors").metadata
    assert metadata["bmtpt.method"] == "zero"
    assert metadata["bmtpt.prior"].startswith("none: the init has no source posterior")

    evaluate = bmtpt("evaluate", "--prompts", "zero.safetensors", "--out", "results.json")
    assert evaluate.exit_code == 0, evaluate.output
    assert [r["task"] for r in json.loads((tmp_path / "results.json").read_text())["results"]] == ["demo_rte"]

    grid = bmtpt("fewshot", "--methods", "pt,zero", "--tasks", "demo_rte", "--shots", "4", "--seeds", "0-1",
                 "--steps", "2", "--batch-size", "4", "--out", "grid")
    assert grid.exit_code == 0, grid.output
    rows = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["method"], r["seed"], r["prior"]) for r in rows) == [
        ("pt", 0, False), ("pt", 1, False), ("zero", 0, False), ("zero", 1, False)]
    assert "an all-zero prompt, no prior" in (tmp_path / "grid" / "table.md").read_text()

    export = bmtpt("export", "--prompts", "zero.safetensors", "--format", "safetensors", "--out", "export")
    assert export.exit_code == 0, export.output
    assert listing(tmp_path / "export") == ["README.md", "demo_rte.safetensors"]


def test_an_export_format_the_method_does_not_support_is_refused_naming_it(zero_method, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.METHODS, "zero", dataclasses.replace(ZERO, export_formats=("safetensors",)))
    monkeypatch.chdir(tmp_path)
    adapt = bmtpt("adapt", "--method", "zero", "--tasks", "demo_rte", "--steps", "1", "--eval-every", "1",
                  "--batch-size", "4", "--warmup-steps", "0", "--out", "zero.safetensors")
    assert adapt.exit_code == 0, adapt.output
    error = one_line_error(bmtpt("export", "--prompts", "zero.safetensors", "--format", "peft", "--out", "export"))
    assert "method zero" in error and "--format peft" in error and "safetensors" in error
    assert not (tmp_path / "export").exists()


def _particles(path, count):
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=TINY_D, prompt_length=8, config={})
    save_particles(path, torch.randn(count, 8, TINY_D, generator=torch.Generator().manual_seed(count)),
                   tasks=["demo_nli"], metadata=metadata)
    return str(path)


def test_the_method_an_init_means_and_a_file_of_another_method_refused_naming_both(tmp_path):
    posterior, single = _particles(tmp_path / "p.safetensors", 3), _particles(tmp_path / "m.safetensors", 1)
    posterior_file, single_file = read_init_file(posterior), read_init_file(single)
    assert infer_method("random", None, None, True).name == "pt"
    assert infer_method(posterior, posterior_file, None, True).name == "bmtpt"
    assert infer_method(posterior, posterior_file, None, False).name == "bmtpt-noprior"
    assert infer_method(posterior, posterior_file, 2, True).name == "particle-2"
    assert infer_method(single, single_file, None, True).name == "multitask"
    assert infer_method("retrieve:dir", None, None, True).name == "spot"
    with pytest.raises(BmtptError, match=r"method multitask needs a one-particle file.*holds M = 3 particles \(a source posterior: method bmtpt\)"):
        resolve_method("multitask", posterior, posterior_file, None, True)
    with pytest.raises(BmtptError, match="method pt starts from no source file, but --init is"):
        resolve_method("pt", posterior, posterior_file, None, True)
    with pytest.raises(BmtptError, match="unknown method 'mpt' in --method"):
        method_named("mpt")
    assert resolve_method("bmtpt", single, single_file, None, True).name == "bmtpt"  # M = 1 is a posterior too


def test_the_prior_is_the_methods_rule_and_nothing_else():
    mean = torch.ones(2, 3)
    start = TargetInit(mean, mean, "p.safetensors", "", None)
    random = TargetInit(mean, None, "random", "", None)
    centres = {name: [method.prior_centre(start, configured) is not None for configured in (True, False)]
               for name, method in METHODS.items()}
    assert centres == {"pt": [False, False], "multitask": [True, False], "bmtpt": [True, True],
                       "bmtpt-noprior": [False, False], "bmtpt-ensemble": [True, True], "spot": [True, False], "spot-oracle": [True, False],
                       "from-prompts": [True, False],
                       "attempt": [False, False]}
    assert all(method.prior_centre(random, True) is None for method in METHODS.values())  # nothing to centre on


def test_the_cli_refuses_a_prior_flag_the_method_contradicts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = one_line_error(bmtpt("adapt", "--method", "bmtpt", "--no-prior", "--init", "random"))
    assert "method bmtpt always has the prior" in error and "--method bmtpt-noprior" in error


def test_a_python_built_adapt_config_with_a_meaningless_combination_is_refused():
    with pytest.raises(BmtptError, match="AdaptConfig.warmup_steps = 50 is not shorter than steps = 10"):
        adapt_config(steps=10, warmup_steps=50)
    with pytest.raises(BmtptError, match=r"AdaptConfig.rank_score = 'median': it must be one of 'sum', 'mean'"):
        adapt_config(rank_score="median")
    with pytest.raises(BmtptError, match=r"AdaptConfig.lr_shared = nan"):
        adapt_config(lr_shared=float("nan"))


def test_evaluate_shots_runs_spot_from_a_per_task_directory(tmp_path, monkeypatch):
    """The probe is a column of the grid, so a method that retrieves (spot) runs there too, with
    `--method spot --init DIR` meaning `--init retrieve:DIR`."""
    monkeypatch.chdir(tmp_path)
    made = bmtpt("source", "--per-task", "--tasks", "demo_review,demo_nli", "--steps", "2", "--warmup-steps", "0",
                 "--out", "src")
    assert made.exit_code == 0, made.output
    probe = ["evaluate", "--shots", "4", "--tasks", "demo_rte", "--seeds", "0-1", "--steps", "2", "--retrieval-steps", "2"]
    for extra, out in ((["--init", "retrieve:src"], "a.json"), (["--method", "spot", "--init", "src"], "b.json")):
        result = bmtpt(*probe, *extra, "--out", out)
        assert result.exit_code == 0, result.output
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert a["method"] == b["method"] == "spot" and a["results"] == b["results"]


def test_evaluate_shots_runs_a_named_particle_through_the_registry(tmp_path, monkeypatch):
    import bmtpt_cli.experiments.fewshot as fewshot_module
    from clihelpers import starting_prompt

    monkeypatch.chdir(tmp_path)
    posterior = _particles(tmp_path / "p.safetensors", 3)
    real, starts = fewshot_module.adapt_cells, []
    monkeypatch.setattr(fewshot_module, "adapt_cells", lambda runner, cells, **k: starts.extend(
        starting_prompt(cell.init) for cell in cells) or real(runner, cells, **k))
    result = bmtpt("evaluate", "--shots", "4", "--method", "particle-1", "--init", posterior, "--tasks", "demo_rte",
                   "--seeds", "0-1", "--steps", "1", "--out", "pp.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "pp.json").read_text())
    assert report["method"] == "particle-1" and len(report["results"][0]["per_seed"]) == 2
    particles = torch.randn(3, 8, TINY_D, generator=torch.Generator().manual_seed(3))  # what _particles wrote
    assert len(starts) == 2 and all(torch.equal(start, particles[1]) for start in starts)
