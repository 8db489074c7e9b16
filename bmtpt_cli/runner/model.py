"""Loading a T5 checkpoint (hub id, local directory, or the offline `tiny` model) and freezing it.

The LM is never trained (SPEC §1): every weight gets `requires_grad_(False)` and the model stays in
eval mode (no dropout), so gradients flow only into the soft prompts that are fed in as embeddings.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import torch

from bmtpt_cli.errors import BmtptError, excerpt

TINY_MODEL = "tiny"
TINY_SEED = 20231206  # fixed so the random `tiny` weights are the same on every machine
TOY_MODEL = "toy"
TOY_WIDE_MODEL = "toy-wide"
TOY3_MODEL = "toy3"
TOY_DIR = Path(__file__).resolve().parent.parent / "models" / "toy"
"""The shipped toy T5 (docs/toyworld.md), pretrained by scripts/pretrain_toy.py on the toy world's sources."""
TOY_MODELS = {TOY_MODEL: TOY_DIR, TOY_WIDE_MODEL: TOY_DIR.parent / "toy-wide", TOY3_MODEL: TOY_DIR.parent / "toy3"}
"""The shipped toy T5s by name: `toy` (d 128) and `toy-wide` (d 192, the same world, tokenizer and recipe at half the
learning rate), each a folder of the package: two widths for cross-model transfer (`bmtpt project`); and `toy3`
(d 128), pretrained on the third toy world (`data.toyworld3`, scripts/pretrain_toy3.py) with its own tokenizer."""


def tiny_t5_config():
    """A small `T5Config` (2+2 layers, d = 64) sized for ByT5's byte vocabulary; runs on any CPU."""
    from transformers import T5Config

    # transformers 5 needs the special ids set explicitly on a hand-built T5Config (DESIGN.md).
    return T5Config(
        vocab_size=384,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=True,
    )


def model_config(name: str):
    """The configuration of `--model` (hub id, local directory or `tiny`) without loading any weights.

    What an export needs to describe the model (d_model, layers, heads: SPEC §8); a hub id is
    read from the local cache when HF_HUB_OFFLINE=1 is set.
    """
    if name == TINY_MODEL:
        return tiny_t5_config()
    if name in TOY_MODELS:
        from transformers import T5Config

        return T5Config.from_pretrained(TOY_MODELS[name], local_files_only=True)
    from transformers import AutoConfig

    _check_local_model(name)
    try:
        return AutoConfig.from_pretrained(name, local_files_only=_cache_only(name))
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from exc


def _build_tiny():
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    tokenizer = ByT5Tokenizer()  # byte-level: needs no vocabulary files, so it works offline
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = T5ForConditionalGeneration(tiny_t5_config())
    return model, tokenizer


def _load_toy(name: str = TOY_MODEL):
    """A shipped toy T5 (`toy`, `toy-wide`, `toy3`) and its word-level tokenizer, read from the package directory (never the hub)."""
    from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

    folder = TOY_MODELS[name]
    if not (folder / "model.safetensors").is_file():
        raise BmtptError(
            f"the {name} model is missing from this install ({folder / 'model.safetensors'}): reinstall bmtpt, "
            f"or rebuild it with scripts/{'pretrain_toy3.py' if name == TOY3_MODEL else 'pretrain_toy.py'}"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    model = T5ForConditionalGeneration.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    return model, tokenizer


def _load_pretrained(name: str):
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    _check_local_model(name)
    cache_only = _cache_only(name)
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=cache_only)
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from exc
    if not getattr(config, "is_encoder_decoder", False):
        raise BmtptError(
            f"model '{name}' is not a T5 (encoder-decoder) model: found {type(config).__name__}; "
            f"bmtpt prompts a frozen T5 — pass t5-base, google/flan-t5-base or another T5 checkpoint"
        )
    _check_safetensors_weights(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=cache_only)
        model = AutoModelForSeq2SeqLM.from_pretrained(name, use_safetensors=True, local_files_only=cache_only)  # never a pickle
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from exc
    return model, tokenizer


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
"""Weight files that are Python pickles: loading one can run code, so bmtpt never does."""


def _check_safetensors_weights(name: str) -> None:
    """Refuse a local model directory whose weights are only pickles (no `*.safetensors`), naming the file.

    transformers would unpickle `pytorch_model.bin` (restricted by `weights_only`, but still a pickle);
    `use_safetensors=True` makes the same refusal for hub models.
    """
    local = Path(name).expanduser()
    if not local.is_dir() or any(local.glob("*.safetensors")):
        return
    pickled = sorted(path.name for pattern in PICKLED_WEIGHTS for path in local.glob(pattern))
    if pickled:
        raise BmtptError(
            f"model directory '{name}' holds its weights only as a pickle ({pickled[0]}), which bmtpt never loads: "
            f"convert it to model.safetensors (load it where you trust it and save_pretrained() it) and pass that folder"
        )


def _looks_like_a_path(name: str) -> bool:
    """A --model value meant as a local directory rather than a hub id (`org/name`)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _check_local_model(name: str) -> None:
    """Refuse a local model path that is missing, a file, or lacks config.json, naming which."""
    local = Path(name).expanduser()
    if not local.exists():
        if _looks_like_a_path(name):
            raise BmtptError(f"no such model directory '{name}': pass an existing directory saved with save_pretrained(), a hub id such as t5-base, or 'tiny'")
        return  # a hub id
    if not local.is_dir():
        raise BmtptError(f"--model '{name}' is a file, not a model directory: pass the directory save_pretrained() wrote")
    if not (local / "config.json").is_file():
        raise BmtptError(
            f"model directory '{name}' has no config.json: pass a directory saved with save_pretrained(), "
            f"a hub id such as t5-base, or 'tiny'"
        )


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
"""The shape of a hub id (`t5-base`, `google/flan-t5-base`): the only model names taken from a file."""


def check_recorded_model(name: str, path: Path | str) -> str:
    """`name`, the model a file's `bmtpt.model` records, when bmtpt may load it without the user naming it.

    Only `tiny`, the toy models and hub ids are taken from a file; anything else (a path, or a name that is a
    directory or file here, which transformers would read instead of the hub) loads only from --model.
    """
    if name == TINY_MODEL or name in TOY_MODELS:
        return name
    if HUB_ID.fullmatch(name) and ".." not in name and not Path(name).exists():
        return name
    shown = shlex.quote(name) if name.isprintable() and 0 < len(name) <= 200 else "PATH"
    raise BmtptError(
        f"'{path}' records the model {excerpt(name)}, which is not a model name bmtpt loads from a file (tiny, toy, "
        f"toy-wide, toy3 or a hub id such as t5-base): pass --model {shown} if you mean it"
    )


def _cache_only(name: str) -> bool:
    """Whether a hub model must come from the local cache: HF_HUB_OFFLINE=1, or the hub cannot be reached.

    The hub is probed as the data load probes it (`data.sources.hub_unreachable`: one short request,
    once per process), so an unreachable hub fails at once in one line (`_load_error`) instead of
    transformers retrying every file for half a minute; a model in the cache still loads. A local
    directory never asks the hub.
    """
    from bmtpt_cli.data.sources import hub_unreachable

    if Path(name).expanduser().exists():
        return False
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    return hub_unreachable() is not None


def _load_error(name: str, exc: Exception) -> BmtptError:
    from bmtpt_cli.data.sources import hub_endpoint, hub_unreachable

    unreachable = None if Path(name).expanduser().exists() else hub_unreachable(probe=False)
    if unreachable is not None:
        return BmtptError(
            f"model '{name}' is not in the local cache and the hub ({hub_endpoint()}) cannot be reached ({unreachable}): "
            f"pass a local directory saved with save_pretrained(), or connect to the network and retry "
            f"(with HF_HUB_OFFLINE=1 a cached model loads without asking the hub)"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = " (HF_HUB_OFFLINE=1 is set: only models already in the local cache load)" if offline else ""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BmtptError(
        f"could not load model '{name}'{hint}: {first_line} — pass a hub id reachable from here, "
        f"a local directory with config.json, or 'tiny'"
    )


def load_frozen_t5(name: str, *, device: str | torch.device = "cpu"):
    """Load model and tokenizer by hub id, local directory, `tiny` or `toy`; freeze every weight; eval mode.

    Returns `(model, tokenizer)`. The model never receives gradients: prompts are the only trainables.
    """
    if name == TINY_MODEL:
        model, tokenizer = _build_tiny()
    elif name in TOY_MODELS:
        model, tokenizer = _load_toy(name)
    else:
        model, tokenizer = _load_pretrained(name)
    model.requires_grad_(False)
    model.eval()
    return model.to(device), tokenizer


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise BmtptError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BmtptError(f"device '{device}' asked for but CUDA is not available here: use --device cpu")
    return resolved


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the LM runs in: None (float32) or bfloat16; `auto` is bf16 on CUDA where supported."""
    if precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BmtptError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 support: use --precision fp32")
        return torch.bfloat16
    raise BmtptError(f"unknown precision '{precision}': use auto, fp32 or bf16")


def _checkpointing_layers(model) -> list[torch.nn.Module]:
    """The modules whose OWN `training` flag decides whether Hugging Face recomputes them.

    Recent transformers (with `modeling_layers`): the `GradientCheckpointingLayer` blocks (T5Block), which
    checkpoint themselves when `self.gradient_checkpointing and self.training`. Older T5: the stacks (T5Stack,
    a `PreTrainedModel`) that checkpoint their blocks under the same condition.
    """
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # an older transformers
        GradientCheckpointingLayer = None
    if GradientCheckpointingLayer is not None:
        layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]
        if layers:
            return layers
    from transformers import PreTrainedModel

    return [
        m for m in model.modules()
        if m is not model and isinstance(m, PreTrainedModel) and getattr(m, "gradient_checkpointing", False)
    ]


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in the backward pass instead of storing them (less memory, more time).

    Hugging Face recomputes a layer only while that layer is in training mode, and training mode is also
    what switches dropout on: in `nn.Dropout` modules, and in the functional dropout T5Attention applies
    to its attention weights with a plain float rate copied from the config at construction (so zeroing
    `nn.Dropout.p` and `config.dropout_rate` is not enough). So the model stays in eval mode, and only the
    checkpointing layers themselves get `training = True` — not their children: every attention,
    feed-forward and dropout inside them runs in eval mode, whatever its dropout is called. A forward
    pass then checks that the numbers are those of eval mode (`check_checkpointing_keeps_eval_numbers`).
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 (gradient_checkpointing_enable deprecated)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.eval()
    layers = _checkpointing_layers(model)
    if not layers:
        raise BmtptError(
            f"--grad-checkpointing: no checkpointing layers found in {type(model).__name__} with this "
            f"transformers version: drop --grad-checkpointing"
        )
    for layer in layers:
        layer.training = True  # this module's flag only (not `.train()`, which recurses into the children)
    check_checkpointing_keeps_eval_numbers(model)


@torch.enable_grad()
def check_checkpointing_keeps_eval_numbers(model, *, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Raise `BmtptError` unless the model, as it stands, gives the logits of pure eval mode.

    One short forward pass (6 input vectors, 3 decoder tokens) with gradients on — the path a training
    step takes through the checkpointed layers — against the same pass with every module in eval mode.
    Any dropout still active (p > 0), whatever the module or attribute that holds it, makes them differ.
    """
    weight = model.get_input_embeddings().weight
    inputs = torch.randn(1, 6, weight.shape[1], generator=torch.Generator().manual_seed(0)).to(weight)
    inputs.requires_grad_(True)
    start = model.config.decoder_start_token_id or 0
    decoder_input_ids = torch.full((1, 3), start, dtype=torch.long, device=weight.device)

    def logits():
        return model(inputs_embeds=inputs, decoder_input_ids=decoder_input_ids, use_cache=False).logits.detach()

    got = logits()
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        expected = logits()
    finally:
        for module, training in modes.items():
            module.training = training
    if not torch.allclose(got, expected, rtol=rtol, atol=atol):
        import transformers

        difference = (got - expected).abs().max().item()
        raise BmtptError(
            f"--grad-checkpointing would change {type(model).__name__}'s numbers with transformers "
            f"{transformers.__version__} (dropout still active; max logit difference {difference:.3g}): "
            f"drop --grad-checkpointing"
        )


def compile_model(model) -> None:
    """`torch.compile` the model's forward (dynamic shapes: batches are padded to their longest)."""
    try:
        model.forward = torch.compile(model.forward, dynamic=True)
    except RuntimeError as exc:  # e.g. an unsupported Python or platform
        raise BmtptError(f"torch.compile is not available here ({exc}): drop --compile") from exc
