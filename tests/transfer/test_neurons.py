"""Neuron stimulation (SPEC §5d) against feed-forward pre-activations computed in the test, by its own hooks."""

from __future__ import annotations

import math

import pytest
import torch

from bmtpt_cli.scoring.neurons import (
    active_neurons,
    binary_cosine,
    layer_windows,
    overlap_matrix,
    pre_activations,
    probe_token_id,
)

SENTINEL_ID = 259  # ByT5's <extra_id_0>: the `tiny` model's probe token


def _prompts(width: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    base = torch.randn(6, width, generator=generator)
    return {"a": base, "b": base + 0.5 * torch.randn(6, width, generator=generator),
            "c": torch.randn(4, width, generator=generator)}


def independent_pre_activations(model, prompt: torch.Tensor, stack: str) -> torch.Tensor:
    """`(L, d_ff)`: each feed-forward block's input (a pre-hook on DenseReluDense) times wiᵀ, by hand, at the
    decoder's first position or the encoder's position l (the probe), from one full forward of the model."""
    inputs: list[torch.Tensor] = []
    blocks = (model.decoder if stack == "decoder" else model.encoder).block
    handles = [block.layer[-1].DenseReluDense.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
               for block in blocks]
    embeds = torch.cat([prompt.unsqueeze(0), model.shared(torch.tensor([[SENTINEL_ID]]))], dim=1)  # (1, l + 1, d)
    try:
        with torch.no_grad():
            model(inputs_embeds=embeds, attention_mask=torch.ones(1, prompt.shape[0] + 1, dtype=torch.long),
                  decoder_input_ids=torch.zeros(1, 1, dtype=torch.long))  # the start token, id 0
    finally:
        for handle in handles:
            handle.remove()
    position = 0 if stack == "decoder" else prompt.shape[0]
    weights = [block.layer[-1].DenseReluDense.wi.weight for block in blocks]  # (d_ff, d) each
    return torch.stack([x[0, position].double() @ w.double().T for x, w in zip(inputs, weights)])


@pytest.mark.parametrize("stack", ["decoder", "encoder"])
def test_pre_activations_are_the_feed_forward_inputs_times_wi_at_the_documented_position(runner, stack):
    prompt = _prompts(runner.d_model)["a"]
    expected = independent_pre_activations(runner.model, prompt, stack)
    got = pre_activations(runner, prompt, stack)
    assert got.shape == (2, 128)  # tiny: 2 layers of d_ff = 128
    assert torch.allclose(got.double(), expected, atol=1e-5)
    assert torch.equal(active_neurons(runner, prompt, stack), expected > 0)  # no value near enough 0 to flip


def test_the_encoder_reads_the_probe_token_not_a_prompt_token(runner):
    prompt = _prompts(runner.d_model)["a"]  # 6 tokens: the probe is at position 6
    feed_forward = runner.model.encoder.block[0].layer[-1].DenseReluDense
    inputs = []
    handle = feed_forward.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    try:
        got = pre_activations(runner, prompt, "encoder")[0]
    finally:
        handle.remove()
    by_position = inputs[0][0].double() @ feed_forward.wi.weight.double().T  # (l + 1, d_ff)
    assert by_position.shape[0] == 7
    assert torch.allclose(got.double(), by_position[6], atol=1e-5)
    assert not torch.allclose(got.double(), by_position[0], atol=1e-3)  # position 0 is a prompt token


def test_overlap_matches_a_set_count_is_one_on_the_diagonal_and_symmetric(runner):
    prompts = _prompts(runner.d_model)
    active = {name: active_neurons(runner, prompt) for name, prompt in prompts.items()}
    matrix = overlap_matrix(active)
    sets = {name: {i for i, on in enumerate(independent_pre_activations(runner.model, p, "decoder").flatten() > 0) if on}
            for name, p in prompts.items()}
    names = list(prompts)
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            a, b = sets[first], sets[second]
            assert matrix[i][j] == pytest.approx(len(a & b) / math.sqrt(len(a) * len(b)), abs=1e-15)
            assert matrix[i][j] == matrix[j][i]
        assert matrix[i][i] == 1.0
    layer_two = overlap_matrix(active, (1, 2))  # the second layer alone
    second = {name: {i for i in s if i >= 128} for name, s in sets.items()}
    assert layer_two[0][1] == pytest.approx(len(second["a"] & second["b"]) / math.sqrt(len(second["a"]) * len(second["b"])))


def test_binary_cosine_by_hand_and_undefined_without_active_neurons():
    a = torch.tensor([[True, True, False, False]])
    b = torch.tensor([[True, False, True, True]])
    assert binary_cosine(a, b) == pytest.approx(1 / math.sqrt(2 * 3))
    assert math.isnan(binary_cosine(a, torch.zeros_like(a)))


@pytest.mark.parametrize("layers,windows,expected", [
    (12, 3, [(0, 4), (4, 8), (8, 12)]),
    (12, 4, [(0, 3), (3, 6), (6, 9), (9, 12)]),  # the reference's T5-base windows
    (4, 3, [(0, 2), (2, 3), (3, 4)]),
    (2, 3, [(0, 1), (1, 2)]),  # never more windows than layers
    (6, 1, [(0, 6)]),
])
def test_layer_windows_cover_the_stack_without_overlap(layers, windows, expected):
    assert layer_windows(layers, windows) == expected


class _WordTokenizer:
    """A tokenizer without sentinels: `<extra_id_0>` is unknown to it."""

    unk_token_id, eos_token_id = 2, 1

    def convert_tokens_to_ids(self, token):
        return self.unk_token_id


def test_the_probe_is_the_first_sentinel_or_else_the_end_of_sequence_token(tiny):
    assert probe_token_id(tiny[1]) == SENTINEL_ID
    assert probe_token_id(_WordTokenizer()) == 1


def test_a_gated_t5_is_read_at_its_gate_wi_0(tiny):
    from transformers import T5ForConditionalGeneration

    from bmtpt_cli.runner.model import tiny_t5_config
    from bmtpt_cli.runner.runner import FrozenT5Runner

    config = tiny_t5_config()
    config.feed_forward_proj, config.dense_act_fn, config.is_gated_act = "gated-gelu", "gelu_new", True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config).eval()
    prompt = _prompts(64)["b"]
    gate = model.decoder.block[1].layer[-1].DenseReluDense
    inputs = []
    handle = gate.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    try:
        got = pre_activations(FrozenT5Runner(model, tiny[1]), prompt, "decoder")
    finally:
        handle.remove()
    assert torch.allclose(got[1].double(), inputs[0][0, 0].double() @ gate.wi_0.weight.double().T, atol=1e-5)
