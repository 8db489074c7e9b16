"""The peer benchmark compares like with like: each PEFT model's loss is bmtpt's loss of that particle."""

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from bench_peer import PeftLoop  # noqa: E402
from workloads import SourceStep, StepShape  # noqa: E402
from reference import particle_losses


def test_each_peft_model_scores_its_particle_as_bmtpt_does(runner):
    step = SourceStep.for_shape(runner, StepShape("tiny", 4, 3, 2, 12, 3))
    peer = PeftLoop(step)
    batch = step.batch
    want = particle_losses(runner, step.particles.detach(), batch)  # (M,) token-mean cross-entropy
    got = torch.stack([
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss.detach()
        for model, _ in peer.models
    ])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    before = [model.prompt_encoder.default.embedding.weight.detach().clone() for model, _ in peer.models]
    peer()  # one step of each: every prompt moves, the frozen model does not
    assert all(not torch.equal(b, m.prompt_encoder.default.embedding.weight) for b, (m, _) in zip(before, peer.models))
    assert not any(p.requires_grad for p in runner.model.parameters())
