"""`bmtpt reproduce`: every table's plan validates offline with the expected runs and cost; a trimmed plan runs
end to end on the toy world and writes the table with the paper's numbers; a rerun skips finished runs; a
changed setting is refused; an unrecorded run restarts."""

import csv
import json
import statistics

import pytest

from clihelpers import bmtpt, one_line_error, snapshot

T13 = 13  # the 8 GLUE and 5 SuperGLUE tasks


def plan_json(*args):
    result = bmtpt("reproduce", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def counts(plan):
    found = {}
    for run in plan["runs"]:
        found[run["command"]] = found.get(run["command"], 0) + 1
    return found


def test_every_table_validates_offline_with_its_expected_runs():
    table2 = plan_json("table2")
    fewshot = [r for r in table2["runs"] if r["command"] == "fewshot"]
    methods = [r["row"] for r in fewshot]
    assert methods == ["pt", "multitask", "spot", "attempt", "bmtpt"] and "mpt" in table2["skipped"]
    assert sum(r["cells"] for r in fewshot) == 3 * 3 * len(methods) * T13  # k × seeds × methods × tasks
    assert counts(table2) == {"source": 3, "fewshot": 5}

    table1 = plan_json("table1")
    single, multi = 5 * T13 * 3, 3 * 2 * 3  # rows × targets × seeds: each task alone; each benchmark at once
    assert counts(table1) == {"source": 3, "adapt": single + multi, "evaluate": single + multi}
    table3 = plan_json("table3")
    assert counts(table3) == {"source": 6, "adapt": 9 * T13 * 3, "evaluate": 9 * T13 * 3}
    assert {r["model"] for r in table3["runs"]} == {"t5-base", "t5-large", "t5-3b"}
    table4 = plan_json("table4")
    assert counts(table4) == {"source": 3, "adapt": 5 * 8 * 3, "evaluate": 5 * 8 * 3}


def test_runs_chain_their_artifacts_and_stages_say_what_may_run_together(tmp_path):
    plan = plan_json("table1", "--rows", "spot,bmtpt", "--tasks", "rte", "--seeds", "2", "--out", tmp_path / "t1")
    runs = {r["name"]: r for r in plan["runs"]}
    source = runs["source/posterior-p0"]
    assert source["stage"] == 1 and source["argv"][:4] == ["bmtpt", "source", "--preset", "paper"]
    adapt = runs["adapt/single-target/bmtpt/rte/p0-s1"]
    init = adapt["argv"][adapt["argv"].index("--init") + 1]
    assert init == str(tmp_path / "t1" / source["produces"]) and adapt["stage"] == 2 and adapt["after"] == [source["name"]]
    spot = runs["adapt/single-target/spot/rte/p0-s0"]
    assert spot["argv"][spot["argv"].index("--init") + 1] == "retrieve:" + str(tmp_path / "t1" / "sources/per-task-p0")
    evaluate = runs["evaluate/single-target/bmtpt/rte/p0-s1"]
    assert evaluate["stage"] == 3 and evaluate["consumes"] == [adapt["produces"]]
    # one source run per kind, shared by every row and target that starts from it
    assert sum(r["command"] == "source" for r in plan["runs"]) == 2


def test_each_printed_command_runs_on_its_own(tmp_path):
    """A plan's command lines are real bmtpt commands: each parses and resolves to the plan's settings."""
    plan = plan_json("table2", "--rows", "attempt", "--out", tmp_path)
    for run in plan["runs"]:
        result = bmtpt(*run["argv"][1:], "--print-config")
        assert result.exit_code == 0, result.output
        config = result.stdout
        assert "seed = 0" in config or run["command"] == "fewshot"
    fewshot = bmtpt(*plan["runs"][-1]["argv"][1:], "--print-config").stdout
    assert 'methods = ["attempt"]' in fewshot and "lr_scales = 0.3" in fewshot and "dev_shots = 0" in fewshot


def test_cost_is_the_training_sequences_at_the_step_time():
    plan = plan_json("table1", "--rows", "bmtpt", "--tasks", "rte", "--seeds", "1", "--step-seconds", "0.4")
    sequences = {r["name"]: r["train_sequences"] for r in plan["runs"]}
    assert sequences["source/posterior-p0"] == 100_000 * 5 * 6  # steps × particles × one example of each source
    assert sequences["adapt/single-target/bmtpt/rte/p0-s0"] == 30_000 * 32  # steps × batch
    assert sequences["adapt/multi-target/bmtpt/glue/p0-s0"] == 30_000 * 32
    assert plan["estimate"]["total_hours"] == pytest.approx((3_000_000 + 2 * 960_000) / 32 * 0.4 / 3600)


def test_other_model_sizes_cost_their_parameter_ratio():
    from bmtpt_cli.reproduce.cost import matrix_parameters, shape_of

    plan = plan_json("table3", "--rows", "bmtpt,bmtpt-t5-large", "--tasks", "rte", "--seeds", "1", "--step-seconds", "1")
    hours = plan["estimate"]["per_run_hours"]
    ratio = matrix_parameters(shape_of("t5-large")) / matrix_parameters(shape_of("t5-base"))
    base, large = hours["adapt/single-target/bmtpt/rte/p0-s0"], hours["adapt/single-target/bmtpt-t5-large/rte/p0-s0"]
    assert large == pytest.approx(base * ratio) and 3.0 < ratio < 3.6


def test_matrix_parameters_count_a_real_t5s_block_matrices():
    """Checked against the parameters of a T5 built from the same shape (less embeddings, norms, position biases)."""
    from transformers import T5Config, T5ForConditionalGeneration

    from bmtpt_cli.reproduce.cost import T5_COMMON, matrix_parameters

    shape = dict(d_model=32, d_ff=48, d_kv=8, num_heads=3, num_layers=2, num_decoder_layers=3)
    model = T5ForConditionalGeneration(T5Config(**T5_COMMON | {"vocab_size": 50}, **shape))
    counted = sum(p.numel() for name, p in model.named_parameters()
                  if p.dim() == 2 and "shared" not in name and "lm_head" not in name and "relative_attention_bias" not in name
                  and "embed_tokens" not in name)
    assert matrix_parameters(shape) == counted


def test_toy_scale_maps_the_world_and_says_which_rows_have_no_counterpart():
    plan = plan_json("table3", "--scale", "toy")
    assert set(plan["skipped"]) == {"pt-t5-large", "bmtpt-t5-large", "pt-t5-3b", "bmtpt-t5-3b"}
    sources = {r["name"]: r["argv"] for r in plan["runs"] if r["command"] == "source"}
    assert all("--model" in argv and argv[argv.index("--model") + 1] == "toy" for argv in sources.values())
    sampled = sources["source/posterior-sampling6of12-p0"]
    assert sampled[sampled.index("--sample-tasks") + 1] == "6" and len(sampled[sampled.index("--tasks") + 1].split(",")) == 12
    assert sources["source/posterior-particles10-p0"][sources["source/posterior-particles10-p0"].index("--particles") + 1] == "10"
    assert plan["tasks"] == ["toy_animal_right", "toy_mood_true", "toy_tool_yes", "toy_time_right"]


def test_timing_run_measures_a_step_here():
    plan = plan_json("table2", "--scale", "toy", "--rows", "pt", "--tasks", "toy_mood_true", "--shots", "4",
                     "--seeds", "1", "--time-steps", "1")
    estimate = plan["estimate"]
    assert estimate["step_seconds"] > 0 and estimate["measured_on"].startswith("cpu")
    assert estimate["total_hours"] == pytest.approx(sum(estimate["per_run_hours"].values()))


@pytest.mark.parametrize("args,words", [
    (["table9"], "unknown table 'table9'"),
    (["table2", "--rows", "bmtpt,nope"], "has no row 'nope'"),
    (["table1", "--tasks", "toy_mood_true"], "no task column 'toy_mood_true'"),
    (["table1", "--shots", "16"], "no few-shot block"),
    (["table2", "--shots", "8"], "no k = 8"),
    (["table2", "--set", "steps=3"], "write COMMAND.KEY=VALUE"),
    (["table2", "--set", "fewshot.stepz=3"], "'stepz' is not a setting of fewshot"),
    (["table2", "--set", "fewshot.out=x"], "the plan sets out itself"),
    (["table2", "--set", "source.steps=0"], "run source/multitask-p0 of the plan: invalid --steps"),
    (["table2", "--scale", "huge"], "unknown --scale 'huge'"),
])
def test_bad_input_is_one_line(args, words):
    assert words in one_line_error(bmtpt("reproduce", *args, "--dry-run"))


TRIMMED = ["--scale", "toy", "--tasks", "toy_mood_true", "--seeds", "2", "--set", "source.steps=4", "--set", "source.warmup_steps=1",
           "--set", "fewshot.steps=3", "--set", "fewshot.dev_shots=8"]


def test_toy_table2_end_to_end_then_resume_then_refuse_a_changed_setting(tmp_path):
    out = tmp_path / "t2"
    args = ["reproduce", "table2", "--rows", "pt,mpt,bmtpt", "--shots", "16", *TRIMMED, "--out", out]
    result = bmtpt(*args)
    assert result.exit_code == 0, result.output
    table = (out / "table.md").read_text()
    assert "## k=16" in table and "| PT |" in table and "| BMTPT |" in table
    assert "GLUE avg 56.7" in table and "GLUE avg 76.4" in table and "GLUE avg 69.5" in table  # the paper's, beside ours
    assert "MPT (not run¹)" in table and "issue 22" in table
    # the table's cells are the grids' own results, averaged over seeds another way
    for row in ("pt", "bmtpt"):
        values = [100 * json.loads(line)["value"] for line in (out / "runs/fewshot" / row / "results.jsonl").read_text().splitlines()]
        cell = next(line for line in csv.DictReader((out / "table.csv").open())
                    if line["row"] == row and line["column"] == "toy_mood_true")
        assert float(cell["mean"]) == pytest.approx(statistics.fmean(values), abs=1e-3) and cell["n"] == "2"
    assert sorted(p.name for p in (out / "state").iterdir()) == [
        "fewshot__bmtpt.json", "fewshot__pt.json", "source__posterior-p0.json"]

    before = snapshot(out / "runs")
    again = bmtpt(*args)
    assert again.exit_code == 0 and again.stderr.count("finished, kept") == 3
    assert snapshot(out / "runs") == before

    changed = [a if a != "fewshot.steps=3" else "fewshot.steps=5" for a in args]
    line = one_line_error(bmtpt(*changed))
    assert "fewshot/pt made with other settings (steps 3 → 5)" in line
    assert snapshot(out / "runs") == before


def test_an_unrecorded_run_restarts_and_only_runs_what_it_is_told(tmp_path):
    out = tmp_path / "t2"
    args = ["reproduce", "table2", "--rows", "pt,bmtpt", "--shots", "4", *TRIMMED, "--out", out]
    refused = bmtpt(*args, "--only", "fewshot/bmtpt")
    assert "reads the output of source/posterior-p0, which is not finished" in one_line_error(refused)
    first = bmtpt(*args, "--only", "fewshot/pt")
    assert first.exit_code == 0 and not (out / "sources").exists()
    (out / "state" / "fewshot__pt.json").unlink()  # as if stopped between the grid's end and its record
    result = bmtpt(*args)
    assert result.exit_code == 0, result.output
    assert "fewshot/pt: bmtpt fewshot" in result.stderr and "(resumed)" in result.stderr
    assert (out / "state" / "fewshot__pt.json").is_file() and (out / "state" / "fewshot__bmtpt.json").is_file()


def test_toy_table1_adapts_each_target_and_scores_it(tmp_path):
    out = tmp_path / "t1"
    result = bmtpt("reproduce", "table1", "--scale", "toy", "--rows", "pt", "--tasks", "toy_tool_yes", "--seeds", "1",
                   "--set", "adapt.steps=3", "--set", "adapt.eval_every=3", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "runs/single-target/pt/toy_tool_yes/p0-s0/results.json").read_text())
    score = 100 * report["results"][0]["value"]
    table = (out / "table.md").read_text()
    assert "## single-target" in table and "## multi-target" in table
    assert f"| PT | {score:.1f} | {score:.1f} |" in table and "GLUE avg 72.2, SuperGLUE avg 57.8" in table


def test_an_edited_preset_is_a_changed_setting(tmp_path, monkeypatch):
    from bmtpt_cli.reproduce import plan as plan_module
    from bmtpt_cli.reproduce.state import changes, check_no_mixing, mark_finished

    plan = plan_module.build_plan("table2", scale="toy", rows=["pt"], tasks=["toy_mood_true"], shots=[4], seeds=1)
    run = plan.runs[0]
    (tmp_path / run.produces).mkdir(parents=True)
    mark_finished(tmp_path, run, 1.0)
    check_no_mixing(tmp_path, plan)  # the same preset: nothing to refuse
    edited = plan_module._preset_data("toyworld") | {"fewshot": {**plan_module._preset_data("toyworld")["fewshot"], "steps": 31}}
    monkeypatch.setattr(plan_module, "_preset_data", lambda name: edited if name == "toyworld" else {})
    record = json.loads(next((tmp_path / "state").iterdir()).read_text())
    assert "preset toyworld key steps 30 → 31" in changes(record, run)
    with pytest.raises(Exception, match="made with other settings"):
        check_no_mixing(tmp_path, plan)
