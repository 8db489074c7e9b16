"""The chunk plan (a pure, deterministic function of device type, memory, model and batch shape) and the runner's cached tokenising."""

import pytest
import torch

from bmtpt_cli.runner.plan import (
    CPU_BLOCK_BYTES, PassPlan, examples_per_eval_pass, length_buckets, plan_step, sequences_per_pass,
)
from bmtpt_cli.runner.runner import target_tokens
from bmtpt_cli.runtime.memory import FIT_FRACTION, estimate_training_bytes

# t5-small's shape (runtime.memory.t5_dims of its config)
T5_SMALL = dict(d_model=512, num_layers=6, num_decoder_layers=6, num_heads=8, d_ff=2048, vocab_size=32128, d_kv=64,
                gated=False)


def _step(**kw):
    args = dict(particles=5, examples=6, device_type="cpu", memory_bytes=0, dims=T5_SMALL, source_length=256,
                target_length=4)
    return plan_step(**{**args, **kw})


def test_cpu_plan_keeps_the_largest_activation_within_the_block():
    # t5-small, S = 256: the feed-forward (S·f = 524,288 floats) and the attention scores (H·S² = 524,288)
    # are 2 MiB per sequence, so 16 sequences fit in 32 MiB: 2 particles × 6 examples a pass.
    plan = _step()
    assert (plan.particles_per_pass, plan.examples_per_pass, plan.passes) == (2, 6, 3)
    assert 2 * 6 * max(256 * 2048, 8 * 256 * 256) * 4 <= CPU_BLOCK_BYTES < 3 * 6 * 256 * 2048 * 4
    assert [(r.start, r.stop) for r, _ in plan.chunks()] == [(0, 2), (2, 4), (4, 5)]
    assert "3 passes of 2 × 6" in str(plan)


def test_the_plan_is_the_same_for_the_same_inputs_and_ignores_cpu_memory():
    assert _step() == _step() == _step(memory_bytes=10**12)
    assert _step(source_length=64).passes == 1  # small activations: one pass
    assert _step(source_length=512).examples_per_pass < 6  # 8 MiB a sequence: examples split too


def test_gpu_plan_is_one_pass_while_it_fits_and_the_largest_chunk_that_fits_after():
    def needs(n):
        return estimate_training_bytes(**T5_SMALL, sequences=n, source_length=256, target_length=4,
                                       trainable_elements=5 * 100 * 512, particles=5)

    big = _step(device_type="cuda", memory_bytes=10 * needs(30), trainable_elements=5 * 100 * 512)
    assert not big.chunked and "fits" in big.reason
    n, _ = sequences_per_pass(device_type="cuda", memory_bytes=int(needs(12) / FIT_FRACTION) + 1, dims=T5_SMALL,
                              sequences=30, source_length=256, target_length=4, trainable_elements=5 * 100 * 512,
                              particles=5)
    assert n == 12  # needs(12) fits, needs(13) does not
    small = _step(device_type="cuda", memory_bytes=int(needs(12) / FIT_FRACTION) + 1, trainable_elements=5 * 100 * 512)
    assert (small.particles_per_pass, small.examples_per_pass) == (2, 6)


def test_a_forced_chunk_overrides_the_device_and_is_balanced():
    assert _step(chunk_sequences=100).passes == 1
    assert (_step(chunk_sequences=6).particles_per_pass, _step(chunk_sequences=6).passes) == (1, 5)
    plan = _step(chunk_sequences=4)  # fewer than B: one particle and half the examples a pass
    assert (plan.particles_per_pass, plan.examples_per_pass, plan.passes) == (1, 3, 10)
    assert "--chunk-sequences 4" in plan.reason


@pytest.mark.parametrize("particles,examples,pp,ep", [(5, 6, 2, 6), (7, 3, 3, 3), (1, 10, 1, 4), (3, 1, 1, 1)])
def test_chunks_cover_every_sequence_once(particles, examples, pp, ep):
    plan = PassPlan(particles, examples, pp, ep, "test")
    seen = [(j, i) for rows, cols in plan.chunks() for j in range(particles)[rows] for i in range(examples)[cols]]
    assert sorted(seen) == [(j, i) for j in range(particles) for i in range(examples)]
    assert len(plan.chunks()) == plan.passes


def test_evaluation_chunks_follow_the_token_budget_and_the_cap():
    per = lambda length: examples_per_eval_pass(device_type="cpu", memory_bytes=0, dims=T5_SMALL, length=length,
                                                target_length=4, eval_tokens=1000, cap=3)
    assert per(100) == 3 and per(400) == 2 and per(2000) == 1
    lengths = [400, 100, 120, 100, 390, 110]
    chunks = length_buckets(lengths, per)
    assert chunks == [[1, 3, 5], [2, 4], [0]]  # sorted by length; [120, 390] pads to 390: 2 × 390 ≤ 1000
    assert sorted(i for c in chunks for i in c) == list(range(6))
    auto = examples_per_eval_pass(device_type="cpu", memory_bytes=0, dims=T5_SMALL, length=327, target_length=4)
    assert auto == CPU_BLOCK_BYTES // (8 * 327 * 327 * 4)  # the (H, L, L) scores are the largest tensor at L = 327


def test_cached_tokenising_gives_the_tokenizers_padded_batch(runner):
    from bmtpt_cli.data.registry import get_task

    texts = [e.source for e in get_task("demo_nli").examples("test")[:5]] + ["x" * 300, "short"]
    targets = ["entailment", "neutral", "no", "x" * 40, "contradiction", "yes", "maybe"]
    for _ in range(2):  # the second time from the cache
        batch = runner.encode(texts, targets)
        want = runner.tokenizer(texts, max_length=runner.max_source_length, truncation=True, padding=True,
                                return_tensors="pt")
        labels = runner.tokenizer(targets, max_length=runner.max_target_length, truncation=True, padding=True,
                                  return_tensors="pt").input_ids
        labels[labels == runner.tokenizer.pad_token_id] = -100
        assert torch.equal(batch.input_ids, want.input_ids) and torch.equal(batch.attention_mask, want.attention_mask)
        assert torch.equal(batch.labels, labels)
        assert batch.target_count == int((labels != -100).sum()) == int(target_tokens(batch))  # counted on the host
        assert batch.rows(slice(0, 3)).target_count is None  # a slice is counted by target_tokens
    pad = runner.tokenizer.pad_token_id
    runner._token_cache[("has a pad", runner.max_target_length)] = [7, pad, 9]  # a target whose ids hold the pad id
    batch = runner.encode(["a", "b"], ["has a pad", "yes"])
    assert batch.labels[0].tolist()[:3] == [7, -100, 9] and batch.target_count == int(target_tokens(batch))


def test_a_step_shape_is_planned_once_and_the_same_plan_comes_back(runner):
    batch = runner.encode(["one", "two", "three"], ["a", "b", "c"])
    first = runner.pass_plan(5, batch, 8)
    assert runner.pass_plan(5, batch, 8) is first and runner.last_plan is first
    assert runner.pass_plan(4, batch, 8) is not first and runner.pass_plan(4, batch, 8).particles == 4


def test_gpu_evaluation_chunks_count_the_decoder_cache_in_half_the_memory():
    memory = 10 * 2**30
    n = examples_per_eval_pass(device_type="cuda", memory_bytes=memory, dims=T5_SMALL, length=327, target_length=4,
                               dtype_bytes=2)
    largest = 8 * 327 * 327 * 2  # bf16 (H, L, L) scores
    cache = (2 * 6 * 512 + 512) * 327 * 2  # 6 decoder layers' cross-attention K and V + the encoder states
    assert n == int(0.9 * memory) // 2 // (4 * largest + cache) == 431
    assert examples_per_eval_pass(device_type="cuda", memory_bytes=memory, dims=T5_SMALL, length=327,
                                  target_length=4, dtype_bytes=2, cap=32) == 32
