"""The GPU benchmark suite runs end to end on a CPU (`--device cpu --quick`), writes every section (a
value or an explicit reason), reports what it measured when its time limit cuts it short, and counts
model FLOPs as the frozen-weight backward actually performs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.py"
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import gpu_suite  # noqa: E402

TIMED = ("step_s", "time_s")


def run_suite(out: Path, *extra: str, timeout: float = 150) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def check_environment(data: dict) -> None:
    env = data["environment"]
    for key in ("device", "torch", "transformers", "cuda", "device_count", "gpu_name", "python", "cpu"):
        assert key in env, key
    assert env["device"] == "cpu" and env["torch"] == torch.__version__


def measured(result: dict) -> bool:
    return any(isinstance(result.get(k), (int, float)) and result[k] > 0 for k in TIMED) or \
        isinstance(result.get("svgd_share"), float)


def test_quick_run_reports_every_section(tmp_path):
    # compile has its own (slow) test below; --time-limit below the subprocess timeout: on an overloaded
    # machine the suite skips what it cannot fit (and says so) rather than being killed
    proc = run_suite(tmp_path, "--skip", "compile", "--time-limit", "90")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SUMMARY" in proc.stdout

    data = json.loads((tmp_path / gpu_suite.JSON_NAME).read_text())
    assert data["finished"] is True and data["quick"] is True
    check_environment(data)
    assert "4·(P_E·T_E + P_D·T_D)" in data["flops"]["formula"]
    assert data["flops"]["peak_tflops"] is None  # a CPU: no peak, MFU null
    assert set(data["sections"]) == set(gpu_suite.SECTIONS)
    for name, section in data["sections"].items():
        assert section["status"] in ("done", "partial", "skipped"), (name, section["status"], section.get("reason"))
        if section["status"] == "skipped":
            assert section["reason"], name
            continue
        assert section["results"], name
        for result in section["results"]:  # a value, or an explicit reason why not
            assert measured(result) or result.get("skipped") or result.get("error"), (name, result)
            for key in TIMED:
                if key in result:
                    assert result[key] > 0, (name, result)

    steps = [r for r in data["sections"]["source_step"]["results"] if "step_s" in r]
    assert {r["precision"] for r in steps} == {"bf16", "fp32"}
    for r in steps:
        assert r["samples_s"] and min(r["samples_s"]) > 0
        assert r["tokens_per_s"] > 0 and r["model_flops_per_step"] > 0
        assert r["peak_memory_bytes"] is None and r["mfu"] is None  # CPU: null
    assert data["sections"]["svgd_share"]["results"][0]["svgd_share"] > 0
    analysis = data["sections"]["max_fit"]["analysis"]
    assert analysis["largest_fit_sequences"] and analysis["points"]
    evaluation = {r["decode"] for r in data["sections"]["evaluation"]["results"] if r.get("examples_per_s")}
    assert evaluation == {"rank", "generate"}

    assert data["sections"]["compile"]["status"] == "skipped" and "--skip" in data["sections"]["compile"]["reason"]

    report = (tmp_path / gpu_suite.MD_NAME).read_text()
    assert "## Summary" in report and "Model FLOPs" in report
    for section in data["sections"].values():
        assert section["title"] in report


@pytest.mark.slow  # torch.compile of the tiny model: ~20 s on an idle CPU, a minute on busy cores
def test_compile_section_measures_the_compiled_step_or_records_why_not(tmp_path):
    proc = run_suite(tmp_path, "--only", "source_step,compile", "--time-limit", "60", timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / gpu_suite.JSON_NAME).read_text())
    section = data["sections"]["compile"]
    assert section["status"] == "done", section
    (result,) = section["results"]
    if result.get("step_s"):  # compiled: the first step holds the compilation
        assert result["variant"] == "compile"
        assert 0 < result["step_s"] < result["first_step_s"]
        assert result["time_vs_plain"] > 0
    else:  # torch.compile unavailable here (no C++ compiler, ...): the error is the result
        assert result["error"]
    assert data["sections"]["scaling_particles"]["reason"] == "not selected (--skip / --only)"


def test_time_limit_still_writes_a_valid_partial_report(tmp_path):
    proc = run_suite(tmp_path, "--time-limit", "1", timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    data = json.loads((tmp_path / gpu_suite.JSON_NAME).read_text())
    assert data["finished"] is True and data["complete"] is False
    check_environment(data)
    assert set(data["sections"]) == set(gpu_suite.SECTIONS)
    last = data["sections"]["compile"]
    assert last["status"] == "skipped" and "time limit" in last["reason"]
    for name, section in data["sections"].items():
        if section["status"] != "done":
            assert section["reason"], name
    assert (tmp_path / gpu_suite.MD_NAME).read_text().startswith("# bmtpt GPU benchmark suite")


def test_bf16_peak_table_matches_device_names():
    cases = {
        "NVIDIA H200": 989.4, "NVIDIA H200 NVL": 835.0, "NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0,
        "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA A100 80GB PCIe": 312.0, "NVIDIA A10": 125.0, "NVIDIA A10G": None,
        "NVIDIA L40S": 362.0, "NVIDIA L4": 121.0, "NVIDIA GH200 480GB": 989.4, "Tesla T4": None, None: None,
    }
    for name, peak in cases.items():
        assert gpu_suite.bf16_peak(name)[0] == peak, name


def test_flop_formula_matches_the_frozen_backward():
    """The weight matmuls of a real shipped step, counted by torch's FlopCounterMode, are 4·(P_E·T_E + P_D·T_D)
    within 3 % (the backward computes input gradients only: 2 + 2, not the 2 + 4 of training the weights),
    and P_E + P_D is every Linear weight of the model exactly once."""
    import workloads
    from torch.utils.flop_counter import FlopCounterMode

    models = gpu_suite.Models(torch.device("cpu"))
    model = models.get("tiny")
    params = gpu_suite.t5_weight_params(model.config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert params["per_encoder_token"] + params["per_decoder_token"] == linear

    shape = workloads.StepShape("tiny", prompt_length=8, particles=3, batch=2, source_len=32, target_len=4)
    step = workloads.SourceStep.for_shape(models.runner(model, "fp32"), shape, steps=10)
    with FlopCounterMode(display=False) as counter:
        step()
    counts = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    weight_matmuls = sum(flops for op, flops in counts.items() if op.endswith(("aten.mm", "aten.addmm")))
    expected = gpu_suite.t5_flops(model.config, sequences=6, encoder_len=40, decoder_len=4)
    assert weight_matmuls == pytest.approx(2 * expected["linear_forward"], rel=0.03)
    assert expected["total"] == 2 * expected["linear_forward"] + 3 * expected["attention_forward"]


def test_gpu_kernel_time_goes_to_the_range_open_when_its_op_started():
    """On CUDA the backward's ops run on autograd's device thread, outside the main thread's range tree:
    kernels are attributed by time, to every range open when the launching op started."""
    ranges = [("bench.source_update", 0.0, 100.0), ("bmtpt.forward", 0.0, 40.0), ("bmtpt.backward", 40.0, 90.0),
              ("bench.source_update", 100.0, 200.0), ("bmtpt.forward", 100.0, 140.0)]
    ops = [(1.0, 5.0), (39.9, 1.0), (40.0, 7.0), (95.0, 2.0), (120.0, 3.0), (250.0, 100.0)]
    totals = gpu_suite.attribute_to_ranges(ranges, ops)
    assert totals == {"bench.source_update": 18.0, "bmtpt.forward": 9.0, "bmtpt.backward": 7.0}
