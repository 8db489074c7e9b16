"""The benchmarks measure the shipped code: the source-step workload is `source_update` itself, its
per-part times are the step's own `bmtpt.*` profiler ranges, and the kernel the step builds once is
the kernel `svgd_direction` would build."""

import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import workloads  # noqa: E402

SHAPE = workloads.StepShape("tiny", prompt_length=4, particles=3, batch=4, source_len=12, target_len=3)


@pytest.fixture(scope="module")
def tiny_runner():
    from bmtpt_cli.runner.model import load_frozen_t5
    from bmtpt_cli.runner.runner import FrozenT5Runner

    model, tokenizer = load_frozen_t5("tiny")
    return FrozenT5Runner(model, tokenizer, max_source_length=256, max_target_length=16)


def test_source_step_workload_is_the_shipped_step_and_profiles_its_ranges(tiny_runner):
    from bmtpt_cli.source.svgd import train_source

    step = workloads.SourceStep.for_shape(tiny_runner, SHAPE, steps=2)
    assert tuple(step.batch.input_ids.shape) == (SHAPE.batch, SHAPE.source_len)
    assert tuple(step.batch.labels.shape) == (SHAPE.batch, SHAPE.target_len)

    parts = step.profile(2)  # two real source_update steps under torch.profiler

    assert step.step == 2 and step.last.step == 2
    # (a) an independent path: train_source on the same data and config draws this batch every step
    theta = train_source(tiny_runner, step.examples_by_task, step.config)
    assert torch.equal(step.particles.detach().float().cpu(), theta)
    # (b) the shipped step's record_function ranges were found and timed
    for name in ("forward", "backward", "svgd"):
        assert parts[name] > 0, (name, parts)
    assert set(workloads.COMPONENTS) <= set(parts)
    assert parts["total"] >= sum(parts[name] for name in workloads.COMPONENTS)


def test_bare_pass_uses_the_step_token_batch(tiny_runner):
    step = workloads.SourceStep.for_shape(tiny_runner, SHAPE, steps=2)
    bare = workloads.BarePass(step)
    m, b = SHAPE.particles, SHAPE.batch
    assert torch.equal(bare.labels, step.batch.labels.repeat(m, 1))
    embed = tiny_runner.model.get_input_embeddings()
    assert torch.equal(bare.token_embeds, embed(step.batch.input_ids.repeat(m, 1)))
    assert bare.prompt.shape == (m * b, SHAPE.prompt_length, tiny_runner.d_model)
    bare()  # runs: forward + backward into its leaf prompt


def test_svgd_direction_with_the_prebuilt_kernel_equals_building_it():
    from bmtpt_cli.source.kernel import rbf_kernel, svgd_direction

    g = torch.Generator().manual_seed(0)
    particles = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    scores = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    kernel, h = rbf_kernel(particles)
    for damping in (1.0, 0.4):
        expected = svgd_direction(particles, scores, damping=damping)
        got = svgd_direction(particles, scores, damping=damping, bandwidth=h, kernel=kernel)
        assert got.dtype == torch.float64 and got.shape == particles.shape
        assert torch.equal(got, expected)

    with pytest.raises(ValueError):
        svgd_direction(particles, scores, damping=0.4, bandwidth=h, kernel=kernel[:3, :3])
    with pytest.raises(ValueError):
        svgd_direction(particles, scores, damping=0.4, bandwidth=h, kernel=torch.ones(4, 4, 1, dtype=torch.float64))
    with pytest.raises(ValueError):  # a kernel without its bandwidth
        svgd_direction(particles, scores, damping=0.4, kernel=kernel)


def test_svgd_alone_reads_the_shipped_svgd_range():
    alone = workloads.SvgdAlone(particles=3, prompt_length=2, d_model=4)
    alone()
    assert alone.particles.grad is not None and alone.particles.grad.shape == (3, 2, 4)
    assert alone.profile(2) > 0
