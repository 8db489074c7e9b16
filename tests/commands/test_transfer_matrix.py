"""`bmtpt transfer-matrix` on three demo tasks: the matrices of SPEC §5 as CSV, JSON and heatmaps, the indicators'
correlations with transfer, and its refusals."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

import bmtpt_cli.adapter.train as adapter_training
from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts
from clihelpers import bmtpt, listing, starting_prompt

TASKS = ["demo_rte", "demo_nli", "demo_review"]  # the targets, in the order given
SIMILARITIES = ("similarity_mean", "similarity_tokens", "similarity_euclidean", "similarity_euclidean_tokens",
                "similarity_cosine")
NEURONS = ("neurons_all", "neurons_layer_1", "neurons_layer_2")  # tiny: 2 decoder layers, --neuron-windows 3
NAMES = ("zero_shot", "zero_shot_relative", "tuned", "error_reduction", *SIMILARITIES)
CORRELATION_FILES = ["correlations.csv", "correlations.json", "correlations.md", "scatter"]


def make_prompts_dir(directory, tasks=TASKS, *, length=8, width=64, seed=0):
    """A per-task prompts folder as `source --per-task` writes it: W = the prompt, a = b = 1."""
    directory.mkdir()
    generator = torch.Generator().manual_seed(seed)
    prompts = {}
    for task in tasks:
        prompts[task] = torch.randn(length, width, generator=generator)
        metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=width, prompt_length=length, config={})
        save_prompts(directory / f"{task}.safetensors", prompts[task], {task: (torch.ones(length), torch.ones(width))},
                     metadata=metadata)
    return prompts


def _transfer(root, *args, spy_on=None):
    """Run `bmtpt transfer-matrix` on the folder of `root`; with `spy_on` (a list), record every adapt() call."""
    calls, real = spy_on, adapter_training.adapt

    def spy(runner, tasks, train, dev, init, config, **kwargs):
        calls.append({"task": tasks[0].name, "init": starting_prompt(init), "prior_mean": kwargs.get("prior_mean"), "config": config})
        return real(runner, tasks, train, dev, init, config, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        if spy_on is not None:
            patch.setattr(adapter_training, "adapt", spy)
        result = bmtpt("transfer-matrix", "--prompts-dir", root / "prompts", "--max-source-length", "48", *args)
    assert result.exit_code == 0, result.output
    return result


def _records(out, names):
    return {name: json.loads((out / f"{name}.json").read_text()) for name in names}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Zero-shot transfer and similarity over the three demo tasks (no tuning)."""
    root = tmp_path_factory.mktemp("transfer")
    prompts = make_prompts_dir(root / "prompts")
    result = _transfer(root, "--tasks", ",".join(TASKS), "--taskless", "--out", root / "out")
    return {"root": root, "out": root / "out", "prompts": prompts, "result": result,
            "records": _records(root / "out", NAMES[:2] + NAMES[4:] + NEURONS + ("correlations",))}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Transfer with tuning (one step) of one target from two source prompts; every adapt() call recorded."""
    root = tmp_path_factory.mktemp("tuned")
    prompts = make_prompts_dir(root / "prompts")
    calls = []
    result = _transfer(root, "--tasks", "demo_rte", "--sources", "demo_nli,demo_review", "--tune", "1", "--batch-size", "4",
                       "--neuron-stack", "encoder", "--neuron-windows", "1", "--out", root / "out", spy_on=calls)
    return {"out": root / "out", "prompts": prompts, "calls": calls, "result": result,
            "records": _records(root / "out", NAMES + ("neurons_all", "correlations"))}


integration = pytest.mark.integration  # the tests of the two runs above


@integration
def test_every_matrix_is_written_as_csv_json_and_png(run, tuned):
    untuned = [name for name in NAMES if name not in ("tuned", "error_reduction")] + list(NEURONS)
    assert listing(run["out"]) == sorted([f"{name}.{ext}" for name in untuned for ext in ("csv", "json", "png")]
                                         + CORRELATION_FILES)
    assert listing(run["out"] / "scatter") == sorted(f"{name}.png" for name in [*SIMILARITIES, *NEURONS])
    assert listing(run["root"]) == ["out", "prompts"]  # no staging folder or lock left
    assert listing(tuned["out"]) == sorted([f"{name}.{ext}" for name in [*NAMES, "neurons_all"] for ext in ("csv", "json", "png")]
                                           + CORRELATION_FILES)  # --neuron-windows 1: all layers only


@integration
def test_transfer_matrices_are_sources_by_targets_and_the_csv_holds_the_json_values(run, tuned):
    sources = TASKS  # unset --sources: every task in the folder, in the targets' order (one order: the diagonal is own)
    for name in ("zero_shot", "zero_shot_relative"):
        record = run["records"][name]
        assert record["rows"] == sources and record["columns"] == TASKS
        assert len(record["values"]) == 3 and all(len(row) == 3 for row in record["values"])
        rows = [row for row in csv.reader((run["out"] / f"{name}.csv").read_text().splitlines()) if not row[0].startswith("#")]
        assert rows[0][1:] == TASKS and [row[0] for row in rows[1:]] == sources
        assert [[float(v) for v in row[1:]] for row in rows[1:]] == record["values"]
    for name in ("zero_shot", "tuned", "error_reduction"):  # --sources in the order given, as rows
        record = tuned["records"][name]
        assert record["rows"][:2] == ["demo_nli", "demo_review"] and record["columns"] == ["demo_rte"]
        assert [len(row) for row in record["values"]] == [1] * len(record["rows"])
    for name in ("tuned", "error_reduction"):  # the random-init baseline is the last row
        assert tuned["records"][name]["rows"] == ["demo_nli", "demo_review", "random init"]
    assert tuned["records"]["similarity_mean"]["rows"] == ["demo_nli", "demo_review", "demo_rte"]  # sources ∪ targets


@integration
def test_relative_zero_shot_is_the_score_over_the_targets_own_score_with_100_on_the_diagonal(run):
    absolute, relative = run["records"]["zero_shot"], run["records"]["zero_shot_relative"]
    for i, source in enumerate(absolute["rows"]):
        for j, target in enumerate(absolute["columns"]):
            own = absolute["values"][absolute["rows"].index(target)][j]
            assert relative["own_scores"][target] == own
            assert relative["values"][i][j] == pytest.approx(100 * absolute["values"][i][j] / own, rel=1e-12)
            if source == target:
                assert relative["values"][i][j] == 100.0  # exactly
    assert relative["scoring"] == {"decode": "rank", "split": "test", "rank_score": "sum", "invalid_predictions": "wrong"}
    assert relative["per_target"]["demo_nli"] == {"metric": "accuracy", "decode": "rank", "rules": {"rank_score": "sum"},
                                                  "examples": 64}
    assert relative["settings"]["taskless"] is True and relative["data"]["label_style"] == "words"
    assert relative["provenance"]["versions"]["torch"] and relative["model"] == "tiny"


@integration
def test_a_zero_shot_cell_is_the_source_prompt_scored_on_the_target_by_score_task(run, tiny):
    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.scoring.score import score_task
    from bmtpt_cli.runner.runner import FrozenT5Runner

    model, tokenizer = tiny
    runner = FrozenT5Runner(model, tokenizer, max_source_length=48, max_target_length=16)  # the run's settings
    task = get_task("demo_rte")
    examples = task.examples("test", taskless=True)
    expected = score_task(runner, run["prompts"]["demo_nli"], task, examples)
    assert run["records"]["zero_shot"]["values"][0][0] == expected.value  # row demo_nli, column demo_rte
    assert run["records"]["zero_shot"]["all_metrics"]["demo_nli -> demo_rte"] == expected.metrics


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


@integration
def test_similarity_matrices_are_symmetric_and_match_a_brute_force_double_loop(run):
    prompts = {name: run["prompts"][name].double().tolist() for name in sorted(TASKS)}
    for measure in ("mean", "tokens"):  # the new measures: tests/transfer/test_similarity.py, and the next test
        record = run["records"][f"similarity_{measure}"]
        names, values = record["rows"], record["values"]
        assert names == record["columns"] == TASKS  # sources ∪ targets, in the targets' order
        for i, first in enumerate(names):
            for j, second in enumerate(names):
                e1, e2 = prompts[first], prompts[second]
                if measure == "mean":
                    expected = _cos([sum(col) / len(e1) for col in zip(*e1)], [sum(col) / len(e2) for col in zip(*e2)])
                else:
                    expected = sum(_cos(u, v) for u in e1 for v in e2) / (len(e1) * len(e2))
                assert values[i][j] == pytest.approx(expected, abs=1e-12)
                assert values[i][j] == values[j][i]
        if measure == "mean":
            assert [values[i][i] for i in range(3)] == pytest.approx([1.0] * 3, abs=1e-12)


@integration
def test_prompt_similarities_and_neuron_stimulation_are_what_the_scoring_functions_give(run, runner):
    from bmtpt_cli.scoring.neurons import active_neurons, overlap_matrix
    from bmtpt_cli.scoring.similarity import similarity_matrix

    prompts = {name: run["prompts"][name] for name in TASKS}  # sources ∪ targets, in the targets' order
    for measure in ("euclidean", "euclidean_tokens", "cosine"):
        record = run["records"][f"similarity_{measure}"]
        assert record["values"] == similarity_matrix(prompts, measure).tolist()
        assert [record["values"][i][i] for i in range(3)] == pytest.approx([1.0] * 3, abs=1e-12)
    active = {name: active_neurons(runner, prompt, "decoder") for name, prompt in prompts.items()}
    for name, window in zip(NEURONS, (None, (0, 1), (1, 2))):
        record = run["records"][name]
        assert record["values"] == overlap_matrix(active, window)
        assert [record["values"][i][i] for i in range(3)] == [1.0] * 3
        assert record["neurons"]["stack"] == "decoder" and record["neurons"]["probe"] == "<extra_id_0>"
    assert run["records"]["neurons_layer_2"]["neurons"]["layers"] == [2, 2]


def _pairs(records, indicator, transfer):
    """(indicator, transfer) over the pairs source != target, read back from the written matrices."""
    x, y = records[indicator], records[transfer]
    return [(x["values"][x["rows"].index(s)][x["columns"].index(t)], y["values"][i][j])
            for i, s in enumerate(y["rows"]) for j, t in enumerate(y["columns"])
            if s != t and s != "random init" and y["values"][i][j] is not None]


@integration
def test_correlations_are_scipys_over_the_written_matrices_and_ranked_by_spearman(run):
    import scipy.stats

    record = run["records"]["correlations"]
    assert list(record["transfers"]) == ["zero_shot_relative"]  # no --tune: no error reduction
    ranked = record["transfers"]["zero_shot_relative"]
    assert sorted(entry["indicator"] for entry in ranked) == sorted([*SIMILARITIES, *NEURONS])
    compared = 0
    for entry in ranked:
        pairs = _pairs(run["records"], entry["indicator"], "zero_shot_relative")
        assert entry["all_pairs"]["n"] == len(pairs) == 6  # 3 sources × 3 targets, less the diagonal
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        if len(set(ys)) > 1 and len(set(xs)) > 1:
            r, p = scipy.stats.pearsonr(xs, ys)
            rho, p_rho = scipy.stats.spearmanr(xs, ys)
            got = entry["all_pairs"]
            assert got["pearson_r"] == pytest.approx(r, abs=1e-12) and got["pearson_p"] == pytest.approx(p, rel=1e-9)
            assert got["spearman_rho"] == pytest.approx(rho, abs=1e-12) and got["spearman_p"] == pytest.approx(p_rho, rel=1e-9)
            compared += 1
        else:
            assert entry["all_pairs"]["pearson_r"] is None  # a constant side: undefined, null in the JSON
        assert list(entry["per_target"]) == TASKS and all(c["n"] == 2 for c in entry["per_target"].values())
        assert all(c["spearman_rho"] is None for c in entry["per_target"].values())  # 2 sources: too few pairs
    assert compared  # tiny's chance scores are fixed: one off-diagonal cell differs from the rest
    rhos = [entry["all_pairs"]["spearman_rho"] for entry in ranked]
    defined = [rho for rho in rhos if rho is not None]
    assert defined == sorted(defined, reverse=True) and rhos[:len(defined)] == defined  # undefined last
    lines = (run["out"] / "correlations.csv").read_text().splitlines()
    assert lines[-1].startswith("# model 'tiny' has random weights")  # the notes, as in a matrix's CSV
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert [(row["indicator"], row["rank"]) for row in rows if row["target"] == "all"] == [
        (entry["indicator"], str(entry["rank"])) for entry in ranked]
    assert len(rows) == len(ranked) * 4  # all pairs, then each of the 3 targets
    markdown = (run["out"] / "correlations.md").read_text()
    assert "| 1 | `" + ranked[0]["indicator"] + "` | 6 |" in markdown and "chance level" in markdown


@integration
def test_tuned_runs_correlate_the_error_reduction_too_and_read_the_encoder(tuned):
    record = tuned["records"]["correlations"]
    assert list(record["transfers"]) == ["zero_shot_relative", "error_reduction"]
    for entry in record["transfers"]["error_reduction"]:
        assert entry["all_pairs"]["n"] == 2 and list(entry["per_target"]) == ["demo_rte"]  # random init left out
        assert [point[0] for point in entry["points"]["demo_rte"]] == ["demo_nli", "demo_review"]
    neurons = tuned["records"]["neurons_all"]
    assert neurons["neurons"] == {"stack": "encoder", "layers": [1, 2], "position": "l", "probe": "<extra_id_0>"}


@integration
def test_tuning_starts_from_each_source_prompt_and_a_random_init_and_reports_the_error_reduction(tuned):
    calls, prompts = tuned["calls"], tuned["prompts"]
    assert [call["task"] for call in calls] == ["demo_rte"] * 3  # a random init, then each source
    for call in calls:
        assert call["config"].steps == 1 and call["config"].batch_size == 4 and call["config"].eval_every is None
    assert calls[0]["prior_mean"] is None  # random init: vanilla prompt tuning, no prior
    assert not any(torch.equal(calls[0]["init"], p) for p in prompts.values())
    for call, source in zip(calls[1:], ["demo_nli", "demo_review"]):
        assert torch.equal(call["init"], prompts[source]) and torch.equal(call["prior_mean"], prompts[source])
    scores, reduction = tuned["records"]["tuned"], tuned["records"]["error_reduction"]
    assert reduction["random_init_scores"] == scores["random_init_scores"] and list(scores["random_init_scores"]) == ["demo_rte"]
    err_random = 1 - scores["random_init_scores"]["demo_rte"]
    for i in range(2):
        err_source = 1 - scores["values"][i][0]
        assert reduction["values"][i][0] == pytest.approx(100 * (err_random - err_source) / err_random, abs=1e-9)
    assert reduction["tuning"]["steps"] == 1 and reduction["tuning"]["selection"] == "last step"
    own = tuned["records"]["zero_shot_relative"]["own_scores"]["demo_rte"]  # demo_rte is no source: scored apart
    assert tuned["records"]["zero_shot_relative"]["values"][0][0] == pytest.approx(
        100 * tuned["records"]["zero_shot"]["values"][0][0] / own, rel=1e-12)


@integration
def test_heatmaps_are_real_images(run, tuned):
    import matplotlib.image

    pictures = [(tuned if name in ("tuned", "error_reduction") else run)["out"] / f"{name}.png" for name in NAMES]
    pictures += [run["out"] / f"{name}.png" for name in NEURONS] + [run["out"] / "scatter" / "neurons_all.png"]
    for path in pictures + [tuned["out"] / "scatter" / "similarity_cosine.png"]:
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 400
        colours = {tuple(p) for p in (image[::3, ::3, :3] * 255).round().astype(int).reshape(-1, 3).tolist()}
        assert len(colours) > 20, path


@integration
def test_the_terminal_shows_the_relative_table_and_a_summary_line_per_matrix(run):
    output = run["result"].stdout
    assert "Zero-shot transfer relative to the target's own prompt" in output
    for name in ("zero_shot", "zero_shot_relative", *SIMILARITIES, *NEURONS):
        assert f"\n{name}: 3×3" in output
    assert "Indicators vs Zero-shot transfer" in output and "Spearman ρ" in output
    assert f"wrote {run['out']}" in output


# ------------------------------------------------------------------------------------------------ refusals
@pytest.fixture
def prompts_dir(tmp_path):
    make_prompts_dir(tmp_path / "prompts", ["demo_rte", "demo_nli"])
    return tmp_path / "prompts"


def _refused(*args) -> str:
    result = bmtpt("transfer-matrix", *map(str, args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_digit_labels_are_refused(prompts_dir, tmp_path):
    message = _refused("--prompts-dir", prompts_dir, "--label-style", "digits", "--out", tmp_path / "out")
    assert "--label-style digits" in message and "drop --label-style" in message


def test_a_target_without_its_own_prompt_is_refused_naming_how_to_make_one(prompts_dir, tmp_path):
    message = _refused("--prompts-dir", prompts_dir, "--tasks", "demo_rte,demo_review", "--out", tmp_path / "out")
    assert "demo_review" in message and "bmtpt source --per-task" in message and "demo_rte" not in message.split("(")[0]


def test_a_source_not_in_the_folder_is_refused(prompts_dir, tmp_path):
    message = _refused("--prompts-dir", prompts_dir, "--sources", "demo_topic", "--out", tmp_path / "out")
    assert "demo_topic" in message and "demo_nli, demo_rte" in message


def test_an_existing_output_folder_needs_force_and_a_missing_prompts_folder_is_named(prompts_dir, tmp_path):
    (tmp_path / "out").mkdir()
    assert "pass --force" in _refused("--prompts-dir", prompts_dir, "--out", tmp_path / "out")
    assert listing(tmp_path / "out") == []
    message = _refused("--prompts-dir", tmp_path / "nowhere", "--out", tmp_path / "new")
    assert "nowhere" in message and "bmtpt source --per-task" in message
    assert listing(tmp_path) == ["out", "prompts"]  # no output folder, staging folder or lock left


def test_tuning_options_without_tune_are_refused(prompts_dir, tmp_path):
    message = _refused("--prompts-dir", prompts_dir, "--lr-shared", "0.1", "--out", tmp_path / "out")
    assert "--lr-shared" in message and "--tune" in message
    message = _refused("--prompts-dir", prompts_dir, "--retrieval-measure", "tokens", "--out", tmp_path / "out")
    assert "--retrieval-measure only applies to adapt --init retrieve:DIR" in message


def test_neuron_options_without_neurons_are_refused(prompts_dir, tmp_path):
    message = _refused("--prompts-dir", prompts_dir, "--no-neurons", "--neuron-stack", "encoder", "--out", tmp_path / "out")
    assert "--neuron-stack" in message and "--no-neurons" in message
    message = _refused("--prompts-dir", prompts_dir, "--neuron-windows", "0", "--out", tmp_path / "out")
    assert "--neuron-windows" in message
    assert listing(tmp_path) == ["prompts"]


def test_a_preset_table_sets_the_commands_keys(tmp_path, monkeypatch):
    from bmtpt_cli.settings import resolve_settings

    for name in ("BMTPT_TUNE", "BMTPT_TASKS", "BMTPT_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    preset = tmp_path / "p.toml"
    preset.write_text('model = "tiny"\n[transfer-matrix]\ntune = 3\nsources = ["demo_rte"]\n')
    settings = resolve_settings("transfer-matrix", str(preset), {"tasks": "demo_nli,demo_rte"})
    assert settings.tune == 3 and settings.sources == ["demo_rte"] and settings.tasks == ["demo_nli", "demo_rte"]
    assert settings.origin("tune") == "preset 'p' key [transfer-matrix].tune"
