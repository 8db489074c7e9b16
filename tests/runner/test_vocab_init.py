"""Vocabulary initialisation: which token ids a prompt may start from, per tokenizer, and that only those are drawn."""

from pathlib import Path

import pytest
import torch

from bmtpt_cli.methods.init import resolve_init
from bmtpt_cli.source.svgd import SourceConfig, init_particles

T5_TOKENIZER = Path("/work/shared/data/tokenizers/t5")
BYTE_OFFSET = 3  # ByT5: id = byte + 3 (pad, eos, unk come first)
PRINTABLE_IDS = set(range(32 + BYTE_OFFSET, 127 + BYTE_OFFSET))  # bytes 32..126: ' ' .. '~'


def _row_ids(runner, prompts: torch.Tensor) -> list[int]:
    """The vocabulary id of every prompt vector (the tiny model's embedding rows are all distinct)."""
    table = runner.vocab_embeddings.detach().float()
    assert torch.unique(table, dim=0).shape[0] == table.shape[0]
    flat = prompts.reshape(-1, table.shape[1])
    matches = (flat[:, None, :] == table[None, :, :]).all(dim=2)  # (n, V)
    assert (matches.sum(dim=1) == 1).all()
    return matches.float().argmax(dim=1).tolist()


def _source_config(**overrides) -> SourceConfig:
    values = dict(
        particles=100, prompt_length=100, steps=1, examples_per_task=1, sample_tasks=None, lr=0.1, warmup_steps=0,
        weight_decay=0.0, damping=None, damping_c=1.0, likelihood_scale=1.0, loss_weighting="tokens", bandwidth=None,
        vocab_top_k=5000, seed=0, checkpoint_every=1,
    )
    return SourceConfig(**{**values, **overrides})


# ----------------------------------------------------------------------------- the call sites (fail on the old code)
def test_source_particles_start_from_printable_characters_only(runner):
    """10,000 draws (100 particles × 100 tokens) through `init_particles`: no sentinel, special or non-ASCII byte."""
    particles = init_particles(runner, _source_config(), torch.Generator().manual_seed(0))
    assert particles.shape == (100, 100, runner.d_model) and particles.dtype == torch.float32
    ids = _row_ids(runner, particles)
    assert set(ids) <= PRINTABLE_IDS, sorted(set(ids) - PRINTABLE_IDS)[:10]
    assert len(set(ids)) == len(PRINTABLE_IDS)  # 10,000 draws over 95 ids: every one is drawn
    again = init_particles(runner, _source_config(), torch.Generator().manual_seed(0))
    assert torch.equal(particles, again)  # the same seed, the same particles


def test_a_random_target_prompt_starts_from_printable_characters_only(runner):
    init = resolve_init("random", runner, prompt_length=10_000, seed=3)
    assert init.prompt.shape == (10_000, runner.d_model) and init.prior_mean is None
    ids = _row_ids(runner, init.prompt)
    assert set(ids) <= PRINTABLE_IDS, sorted(set(ids) - PRINTABLE_IDS)[:10]
    again = resolve_init("random", runner, prompt_length=10_000, seed=3)
    assert torch.equal(init.prompt, again.prompt)


# ----------------------------------------------------------------------------- the candidate ids
def test_byte_tokenizer_candidates_are_exactly_the_printable_ascii_bytes():
    from transformers import ByT5Tokenizer

    from bmtpt_cli.runner.prompts import vocab_candidate_ids

    tokenizer = ByT5Tokenizer()
    ids = vocab_candidate_ids(tokenizer, top_k=5000)
    assert ids.dtype == torch.long and ids.tolist() == sorted(PRINTABLE_IDS)
    assert tokenizer.decode(ids.tolist()) == "".join(chr(b) for b in range(32, 127))
    special = set(tokenizer.all_special_ids) | set(tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(125)]))
    assert not special & set(ids.tolist())
    assert vocab_candidate_ids(tokenizer, top_k=10).tolist() == sorted(PRINTABLE_IDS)[:10]  # top_k still caps


def test_the_runner_gives_the_candidates_of_its_tokenizer(runner):
    from bmtpt_cli.runner.prompts import vocab_candidate_ids

    assert torch.equal(runner.vocab_candidate_ids(5000), vocab_candidate_ids(runner.tokenizer, 5000))
    assert runner.vocab_candidate_ids(5000).max() < runner.vocab_embeddings.shape[0]


@pytest.mark.skipif(not (T5_TOKENIZER / "spiece.model").is_file(), reason="the real T5 SentencePiece tokenizer is absent")
def test_sentencepiece_candidates_are_the_5000_lowest_non_special_ids():
    from transformers import AutoTokenizer

    from bmtpt_cli.runner.prompts import vocab_candidate_ids

    tokenizer = AutoTokenizer.from_pretrained(str(T5_TOKENIZER))
    ids = vocab_candidate_ids(tokenizer, top_k=5000).tolist()
    # pad 0, eos 1, unk 2 are the only specials below 5003: the candidates are ids 3..5002.
    assert len(ids) == 5000 and ids == list(range(3, 5003))
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert not {tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token} & set(tokens)
    assert not any(t.startswith("<extra_id_") for t in tokens)
    sentinels = set(tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(100)]))
    assert min(sentinels) == 32000  # …which sit at the top of the vocabulary
    # Even a top_k past the pieces never reaches a sentinel.
    everything = set(vocab_candidate_ids(tokenizer, top_k=10**6).tolist())
    assert len(everything) == 32000 - 3 and not everything & (sentinels | set(tokenizer.all_special_ids))


class _FakeTokenizer:
    """Neither byte-level nor SentencePiece: 20 tokens, specials scattered, one sentinel only in the vocabulary."""

    all_special_ids = [0, 5, 7]
    all_special_tokens = ["<pad>", "<s>", "</s>"]
    extra_special_tokens = ["<mask>"]

    def __init__(self):
        self.vocab = {f"tok{i}": i for i in range(20)}
        self.vocab.update({"<pad>": 0, "<s>": 5, "</s>": 7, "<mask>": 9, "<extra_id_0>": 12})
        del self.vocab["tok0"], self.vocab["tok5"], self.vocab["tok7"], self.vocab["tok9"], self.vocab["tok12"]

    def __len__(self):
        return 20

    def get_vocab(self):
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab.get(t) for t in tokens]


def test_any_other_tokenizer_gives_its_lowest_non_special_ids():
    from bmtpt_cli.runner.prompts import vocab_candidate_ids

    tokenizer = _FakeTokenizer()
    assert vocab_candidate_ids(tokenizer, top_k=6).tolist() == [1, 2, 3, 4, 6, 8]
    assert vocab_candidate_ids(tokenizer, top_k=100).tolist() == [1, 2, 3, 4, 6, 8, 10, 11, 13, 14, 15, 16, 17, 18, 19]


def test_sampling_draws_only_candidates_and_is_deterministic():
    from bmtpt_cli.runner.prompts import sample_vocab_prompts

    embeddings = torch.arange(50.0).unsqueeze(1).expand(50, 3)  # row i is (i, i, i)
    candidates = torch.tensor([4, 9, 31])
    draw = lambda seed: sample_vocab_prompts(  # noqa: E731
        embeddings, count=100, length=100, candidate_ids=candidates, generator=torch.Generator().manual_seed(seed)
    )
    prompts = draw(0)
    assert prompts.shape == (100, 100, 3) and prompts.dtype == torch.float32
    assert set(prompts[..., 0].flatten().long().tolist()) == {4, 9, 31}
    assert torch.equal(prompts, draw(0)) and not torch.equal(prompts, draw(1))
    assert not torch.equal(prompts[0], prompts[1])  # a different draw per prompt
    with pytest.raises(ValueError, match="no token ids"):
        sample_vocab_prompts(embeddings, count=1, length=2, candidate_ids=torch.tensor([], dtype=torch.long),
                             generator=torch.Generator())
    with pytest.raises(ValueError, match="embedding"):
        sample_vocab_prompts(embeddings, count=1, length=2, candidate_ids=torch.tensor([3, 50]), generator=torch.Generator())
