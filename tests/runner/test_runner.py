"""The frozen-T5 runner against the plain Hugging Face model run by hand."""

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.model import load_frozen_t5
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from reference import batch_loss, particle_losses, score_candidates, sequence_log_likelihoods


def _hand_concatenated_loss(model, tokenizer, prompt, sources, targets):
    """HF's own loss for B examples under one prompt, inputs_embeds concatenated by hand."""
    enc = tokenizer(sources, return_tensors="pt", padding=True)
    labels = tokenizer(targets, return_tensors="pt", padding=True).input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    embeds = model.get_input_embeddings()(enc.input_ids)
    batch = len(sources)
    inputs = torch.cat([prompt.unsqueeze(0).expand(batch, -1, -1), embeds], dim=1)
    mask = torch.cat([torch.ones(batch, prompt.shape[0], dtype=enc.attention_mask.dtype), enc.attention_mask], dim=1)
    return model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss


def test_particle_losses_equal_separate_hf_runs(runner, tiny, demo_examples):
    model, tokenizer = tiny
    examples = demo_examples["demo_sentiment"][:3] + demo_examples["demo_nli"][:2]
    sources, targets = [e.source for e in examples], [e.target for e in examples]
    particles = torch.randn(4, 6, runner.d_model, generator=torch.Generator().manual_seed(0))
    batched = particle_losses(runner, particles, runner.encode(sources, targets))  # one pass
    assert batched.shape == (4,)
    separate = torch.stack([_hand_concatenated_loss(model, tokenizer, p, sources, targets) for p in particles])
    torch.testing.assert_close(batched, separate, rtol=1e-5, atol=1e-5)
    assert len(set(batched.tolist())) == 4  # each particle really gets its own loss


def test_batch_loss_with_per_example_prompts(runner, tiny, demo_examples):
    model, tokenizer = tiny
    examples = demo_examples["demo_sentiment"][:2]
    prompts = torch.randn(2, 5, runner.d_model, generator=torch.Generator().manual_seed(1))
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    loss = batch_loss(runner, prompts, batch)
    # Two examples of equal-length targets: the token mean is the mean of the two single-example losses.
    singles = [_hand_concatenated_loss(model, tokenizer, prompts[i], [e.source], [e.target]) for i, e in enumerate(examples)]
    tokens = [len(tokenizer(e.target).input_ids) for e in examples]
    expected = sum(s * n for s, n in zip(singles, tokens)) / sum(tokens)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_prompts_only(runner, demo_examples):
    examples = demo_examples["demo_nli"][:3]
    particles = torch.randn(2, 4, runner.d_model, requires_grad=True)
    losses = particle_losses(runner, particles, runner.encode([e.source for e in examples], [e.target for e in examples]))
    losses.sum().backward()
    assert particles.grad is not None and particles.grad.abs().sum() > 0
    for name, parameter in runner.model.named_parameters():
        assert not parameter.requires_grad, name
        assert parameter.grad is None, name
    assert not runner.model.training


def test_rank_scores_are_candidate_log_likelihoods(runner, tiny, demo_examples):
    model, tokenizer = tiny
    examples = demo_examples["demo_nli"][:3]
    candidates = ["entailment", "neutral", "contradiction"]
    prompt = torch.randn(5, runner.d_model, generator=torch.Generator().manual_seed(2))
    scores = score_candidates(runner, prompt.expand(3, -1, -1), [e.source for e in examples], candidates)
    assert scores.shape == (3, 3)
    for b, example in enumerate(examples):
        for c, candidate in enumerate(candidates):
            n_tokens = len(tokenizer(candidate).input_ids)
            mean_nll = _hand_concatenated_loss(model, tokenizer, prompt, [example.source], [candidate])
            torch.testing.assert_close(scores[b, c], -mean_nll * n_tokens, rtol=1e-4, atol=1e-4)


def test_greedy_generation_matches_a_hand_decoding_loop(runner, tiny, demo_examples):
    model, tokenizer = tiny
    source = demo_examples["demo_sentiment"][0].source
    prompt = torch.randn(5, runner.d_model, generator=torch.Generator().manual_seed(3))
    (generated,) = runner.generate(prompt.unsqueeze(0), [source], max_new_tokens=4)
    enc = runner.encode([source])
    embeds, mask = runner.prompted_inputs(prompt.unsqueeze(0), enc.input_ids, enc.attention_mask)
    decoder = torch.tensor([[model.config.decoder_start_token_id]])
    with torch.no_grad():
        for _ in range(4):
            logits = model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder).logits
            decoder = torch.cat([decoder, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            if decoder[0, -1].item() == tokenizer.eos_token_id:
                break
    assert generated == tokenizer.decode(decoder[0], skip_special_tokens=True).strip()


def test_tiny_model_is_the_same_every_time_and_frozen():
    first, _ = load_frozen_t5("tiny")
    second, _ = load_frozen_t5("tiny")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert all(not p.requires_grad for p in first.parameters())
    # Building it must not disturb the caller's random stream.
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_frozen_t5("tiny")
    assert torch.equal(torch.rand(3), expected)


def test_model_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(BmtptError, match="config.json"):
        load_frozen_t5(str(tmp_path))


def test_vocab_prompts_are_rows_of_the_embedding_matrix(runner):
    generator = torch.Generator().manual_seed(0)
    candidates = runner.vocab_candidate_ids(5000)
    prompts = sample_vocab_prompts(runner.vocab_embeddings, count=3, length=7, candidate_ids=candidates, generator=generator)
    assert prompts.shape == (3, 7, runner.d_model) and prompts.dtype == torch.float32
    table = runner.vocab_embeddings.detach()
    for vector in prompts.reshape(-1, runner.d_model):
        matches = (table == vector).all(dim=1).nonzero().flatten().tolist()
        assert matches and all(i in candidates.tolist() for i in matches)  # no pad/eos/unk/sentinel rows
    assert not torch.equal(prompts[0], prompts[1])  # a different draw per prompt


def test_a_local_model_directory_loads_like_the_hub(tmp_path, tiny, runner, demo_examples):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_frozen_t5(str(tmp_path))
    assert all(not p.requires_grad for p in loaded.parameters()) and not loaded.training
    from bmtpt_cli.runner.runner import FrozenT5Runner

    examples = demo_examples["demo_nli"][:2]
    particles = torch.randn(2, 3, runner.d_model, generator=torch.Generator().manual_seed(5))
    local = FrozenT5Runner(loaded, loaded_tokenizer, max_source_length=128, max_target_length=16)
    batch = [e.source for e in examples], [e.target for e in examples]
    torch.testing.assert_close(particle_losses(local, particles, local.encode(*batch)), particle_losses(runner, particles, runner.encode(*batch)))


def test_an_unreachable_hub_id_is_a_one_line_error():
    with pytest.raises(BmtptError, match="could not load model 'no-such-org/no-such-t5'") as excinfo:
        load_frozen_t5("no-such-org/no-such-t5")
    assert "\n" not in str(excinfo.value)


def test_shared_encoder_scores_equal_full_passes(runner, demo_examples):
    examples = demo_examples["demo_nli"][:3]
    candidates = [("entailment", "neutral"), ("contradiction",), ("a", "bb", "neutral")]
    prompts = torch.randn(3, 5, runner.d_model, generator=torch.Generator().manual_seed(9))
    shared = runner.candidate_log_likelihoods(prompts, [e.source for e in examples], candidates)
    for b, example in enumerate(examples):
        full = sequence_log_likelihoods(runner, 
            prompts[b].expand(len(candidates[b]), -1, -1), [example.source] * len(candidates[b]), list(candidates[b])
        )
        torch.testing.assert_close(shared[b], full, rtol=1e-5, atol=1e-5)


def test_the_unshared_fallback_gives_the_same_scores(runner, demo_examples):
    """The path taken with an older transformers whose caches cannot be reordered."""
    examples = demo_examples["demo_nli"][:2]
    candidates = [("entailment", "neutral", "contradiction")] * 2
    prompts = torch.randn(2, 5, runner.d_model, generator=torch.Generator().manual_seed(4))
    sources = [e.source for e in examples]
    shared = runner.candidate_log_likelihoods(prompts, sources, candidates)
    encoded = runner.encode(sources)
    embeds, mask = runner.prompted_inputs(prompts, encoded.input_ids, encoded.attention_mask)
    with torch.no_grad():
        hidden = runner.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    owner = torch.tensor([0, 0, 0, 1, 1, 1])
    labels = runner.encode_targets([c for choices in candidates for c in choices])
    with torch.no_grad():
        unshared = runner._candidate_log_likelihoods_unshared(hidden, mask, owner, labels, candidates)
    for a, b in zip(shared, unshared):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
