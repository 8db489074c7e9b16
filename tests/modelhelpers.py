"""A second small T5 for tests that move prompts between models: random weights of another width than
`tiny`'s, saved with `save_pretrained` beside the ByT5 tokenizer, so `--model DIR` loads it offline."""

from __future__ import annotations

from pathlib import Path

WIDE_D_MODEL = 48
"""The width of the second model (`tiny` has 64)."""


def save_small_t5(directory: Path, *, d_model: int = WIDE_D_MODEL, seed: int = 7) -> Path:
    """Write a random-weight `T5ForConditionalGeneration` of width `d_model` (2+2 layers, ByT5's byte
    vocabulary) and the ByT5 tokenizer into `directory`; returns it."""
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=384, d_model=d_model, d_kv=12, d_ff=2 * d_model, num_layers=2, num_decoder_layers=2, num_heads=4,
        dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(directory)  # safetensors
    ByT5Tokenizer().save_pretrained(directory)
    return Path(directory)


def tiny_particles(path: Path, *, tasks=("demo_sentiment", "demo_nli"), count: int = 3, seed: int = 5) -> Path:
    """`count` particles of the `tiny` model (l = 8, d = 64) for `tasks`, as `bmtpt source` writes them."""
    import torch

    from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles

    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=8, config={})
    particles = torch.randn(count, 8, 64, generator=torch.Generator().manual_seed(seed)) * 0.5
    save_particles(path, particles, tasks=list(tasks), metadata=metadata)
    return Path(path)


def per_task_prompts(directory: Path, *, model: str, d_model: int, tasks, length: int = 8, seed: int = 0) -> Path:
    """A directory of per-task prompts files (`<task>.safetensors`, a = b = 1) made with `model`, as
    `bmtpt source --per-task` writes them (random prompts: their values do not matter here)."""
    import torch

    from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for number, task in enumerate(tasks):
        metadata = common_metadata(kind=PROMPTS, model=model, d_model=d_model, prompt_length=length, config={})
        metadata |= {"bmtpt.method": "source --per-task", "bmtpt.init": "random", "bmtpt.init_sha256": ""}
        prompt = torch.randn(length, d_model, generator=torch.Generator().manual_seed(seed + number))
        save_prompts(directory / f"{task}.safetensors", prompt, {task: (torch.ones(length), torch.ones(d_model))},
                     metadata=metadata)
    return directory
