"""Neuron stimulation (Su et al., NAACL 2022, "On Transferability of Prompt Tuning for NLP"; SPEC §5d).

A prompt "stimulates" the frozen T5's feed-forward neurons: the prompt, followed by a fixed probe
input, goes through the model once, and every layer's feed-forward pre-activations (the output of
`DenseReluDense.wi`, `wi_0` in a gated T5) are read at one position. A neuron is active where its
pre-activation is > 0. Two prompts are compared by the cosine of their binary activation vectors,
|A ∩ B| / sqrt(|A| |B|) (NaN when either activates nothing), over all layers or a window of them.

Positions read (the reference, thunlp/Prompt-Transferability `activate_neuron_T5.py`, reads the
decoder's first position; its encoder variant reads the position after the prompt):

- `decoder`: the decoder's first position (its input is the start token), whose feed-forward layers
  see the prompt through cross-attention to the encoder's states of [prompt; probe];
- `encoder`: position l of [prompt; probe], the probe token itself (the first position after the
  l prompt tokens — never position 0, a prompt token).

The probe input is one token, the `<extra_id_0>` sentinel (no end-of-sequence token), or the
tokenizer's end-of-sequence token where it has no sentinel (the toy world's word tokenizer).
The model runs in float32 without autocast, so the signs do not depend on --precision.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Stack = Literal["decoder", "encoder"]
STACKS: tuple[Stack, ...] = ("decoder", "encoder")
SENTINEL = "<extra_id_0>"


def probe_token_id(tokenizer) -> int:
    """The probe input's one token: the `<extra_id_0>` sentinel, else the end-of-sequence token."""
    sentinel = tokenizer.convert_tokens_to_ids(SENTINEL)
    if sentinel is not None and sentinel != tokenizer.unk_token_id:
        return int(sentinel)
    return int(tokenizer.eos_token_id)


def pre_activation_modules(model, stack: Stack) -> list[torch.nn.Module]:
    """Each block's feed-forward input projection, in layer order: `wi` (`wi_0`, the gate, in a gated T5)."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}: use one of {', '.join(STACKS)}")
    blocks = (model.get_decoder() if stack == "decoder" else model.get_encoder()).block
    modules = []
    for block in blocks:
        feed_forward = block.layer[-1].DenseReluDense  # T5LayerFF is a block's last layer in both stacks
        modules.append(feed_forward.wi if hasattr(feed_forward, "wi") else feed_forward.wi_0)
    return modules


@torch.no_grad()
def pre_activations(runner, prompt: torch.Tensor, stack: Stack = "decoder") -> torch.Tensor:
    """The feed-forward pre-activations `(L, d_ff)` of every layer of `stack` for [prompt (l, d); probe],
    read at the position of SPEC §5d (decoder: its first position; encoder: position l, the probe)."""
    model = runner.model
    probe = torch.tensor([[probe_token_id(runner.tokenizer)]], device=runner.device)  # (1, 1)
    embeds, mask = runner.prompted_inputs(prompt.float().unsqueeze(0), probe, torch.ones_like(probe))  # (1, l + 1, d)
    position = 0 if stack == "decoder" else prompt.shape[0]
    recorded: list[torch.Tensor] = []
    hooks = [module.register_forward_hook(lambda _m, _i, output: recorded.append(output[0, position].float()))
             for module in pre_activation_modules(model, stack)]
    try:
        hidden = model.get_encoder()(inputs_embeds=embeds.float(), attention_mask=mask).last_hidden_state
        if stack == "decoder":
            start = torch.full((1, 1), model.config.decoder_start_token_id, device=probe.device)
            model.get_decoder()(input_ids=start, encoder_hidden_states=hidden, encoder_attention_mask=mask)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(recorded).cpu()  # (L, d_ff)


def active_neurons(runner, prompt: torch.Tensor, stack: Stack = "decoder") -> torch.Tensor:
    """Which neurons `prompt` activates: `pre_activations(...) > 0`, bool `(L, d_ff)`."""
    return pre_activations(runner, prompt, stack) > 0


def binary_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """cos of two binary vectors (any shape, flattened): |A ∩ B| / sqrt(|A| |B|); NaN when either is all 0."""
    a, b = first.flatten().bool(), second.flatten().bool()
    count_a, count_b = int(a.sum()), int(b.sum())
    if count_a == 0 or count_b == 0:
        return math.nan
    return int((a & b).sum()) / math.sqrt(count_a * count_b)


def layer_windows(layers: int, windows: int) -> list[tuple[int, int]]:
    """`layers` cut into min(windows, layers) contiguous windows [start, stop) of near-equal size (the
    first ones one layer longer where it does not divide), e.g. 12 layers, 3 windows: 0-4, 4-8, 8-12."""
    count = max(1, min(windows, layers))
    size, extra = divmod(layers, count)
    bounds, start = [], 0
    for index in range(count):
        stop = start + size + (index < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def overlap_matrix(active: dict[str, torch.Tensor], layers: tuple[int, int] | None = None) -> list[list[float]]:
    """The `(n, n)` `binary_cosine` of the prompts' active neurons `(L, d_ff)` over `active` (in its
    order), over the layers [start, stop) of `layers` (None: all of them); symmetric."""
    names = list(active)
    window = {name: (value if layers is None else value[layers[0]:layers[1]]) for name, value in active.items()}
    matrix = [[math.nan] * len(names) for _ in names]
    for i, first in enumerate(names):
        for j in range(i, len(names)):
            matrix[i][j] = matrix[j][i] = binary_cosine(window[first], window[names[j]])
    return matrix
