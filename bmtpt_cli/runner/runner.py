"""The frozen-T5 runner: soft prompts prepended as input embeddings, all prompts in one batched pass.

Every entry point takes prompts of shape `(N, l, d)` — one prompt per sequence — and token ids of the
examples; `inputs_embeds = concat(prompt, embed(x))` with the attention mask extended by l ones (SPEC §1).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bmtpt_cli.runner.plan import PassPlan, examples_per_eval_pass, length_buckets, plan_step
from bmtpt_cli.runner.prompts import vocab_candidate_ids
from bmtpt_cli.runtime.checkpoint import check_stop

IGNORE_INDEX = -100
TOKEN_CACHE_SIZE = 200_000  # texts whose token ids the runner keeps (cleared when full)


@dataclass
class EncodedBatch:
    """Token ids of B examples, padded to the longest in the batch (dynamic padding)."""

    input_ids: torch.Tensor  # (B, n)
    attention_mask: torch.Tensor  # (B, n)
    labels: torch.Tensor | None  # (B, t), padding set to IGNORE_INDEX
    target_count: int | None = None  # labels that are not IGNORE_INDEX, counted by `encode` (None: not counted)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: slice) -> "EncodedBatch":
        """The examples `index` of this batch (views, the batch's padding kept)."""
        labels = self.labels[index] if self.labels is not None else None
        return EncodedBatch(self.input_ids[index], self.attention_mask[index], labels)

    def repeated(self, times: int) -> "EncodedBatch":
        """The batch `times` times over, copy-major (`times`·B rows: rows c·B..(c+1)·B − 1 are copy c)."""
        labels = self.labels.repeat(times, 1) if self.labels is not None else None
        count = None if self.target_count is None else self.target_count * times
        return EncodedBatch(self.input_ids.repeat(times, 1), self.attention_mask.repeat(times, 1), labels, count)


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every target token, `(N, t, V)` logits and `(N, t)` labels → `(N, t)`, 0 at padding.

    Computed in float32 on the flattened tokens (a transposed layout is slower on CPU: benchmark 1).
    """
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return flat.view(labels.shape)


def target_tokens(batch: EncodedBatch) -> torch.Tensor:
    """Number of target tokens in a batch (labels that are not padding)."""
    return (batch.labels != IGNORE_INDEX).sum()


def target_units(batch: EncodedBatch) -> int | torch.Tensor:
    """`target_tokens` as the int `encode` counted where there is one (no tensor work, no device
    sync), else as the tensor (a slice, or a batch built by other code)."""
    return batch.target_count if batch.target_count is not None else target_tokens(batch)


class FrozenT5Runner:
    """Runs a frozen encoder-decoder LM with soft prompts; gradients reach the prompts only."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_source_length: int = 256,
        max_target_length: int = 128,
        autocast_dtype: torch.dtype | None = None,
        chunk_sequences: int | None = None,
        eval_tokens: int | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.autocast_dtype = autocast_dtype  # e.g. torch.bfloat16: the LM runs in it, prompts stay float32
        self._vocab_candidates: dict[int, torch.Tensor] = {}
        self._token_cache: dict[tuple[str, int], list[int]] = {}  # (text, max length) → token ids
        self.chunk_sequences = chunk_sequences  # None: the chunk plan is chosen from device and shapes (`plan`)
        self.eval_tokens = eval_tokens  # None: evaluation chunks are sized from device and shapes
        self._memory_bytes: int | None = None  # read once, at the first plan: plans stay deterministic
        self.last_plan: PassPlan | None = None  # the plan `pass_plan` chose last (a step logs it)
        self._plans: dict[tuple, PassPlan] = {}  # `pass_plan`'s plans by shape
        # The decoder cache's keyword: `cache` in newer transformers 5, `past_key_values` before. Read
        # from the class, so a compiled `model.forward` (a generic wrapper) does not hide it.
        forward = inspect.signature(type(model).forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"

    def _autocast(self):
        """Mixed precision for the LM's forward (and so its backward); nothing at all in float32.

        (Even a disabled `torch.autocast` costs ~2 % of a tiny model's step: benchmark 1.)
        """
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def d_model(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def vocab_embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight  # (V, d)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def vocab_candidate_ids(self, top_k: int) -> torch.Tensor:
        """The token ids a vocabulary-initialised prompt may start from (`prompts.vocab_candidate_ids` of
        this tokenizer), restricted to rows of the embedding matrix; int64 `(K,)`, on the CPU."""
        if top_k not in self._vocab_candidates:
            ids = vocab_candidate_ids(self.tokenizer, top_k)
            self._vocab_candidates[top_k] = ids[ids < self.vocab_embeddings.shape[0]]
        return self._vocab_candidates[top_k].clone()

    # ----------------------------------------------------------------------------- chunk plans
    @property
    def memory_bytes(self) -> int:
        """Memory available to this process on the model's device, read once (at the first plan)."""
        if self._memory_bytes is None:
            from bmtpt_cli.runtime.memory import available_bytes

            self._memory_bytes = available_bytes(self.device)
        return self._memory_bytes

    def _plan_shape(self) -> dict:
        from bmtpt_cli.runtime.memory import t5_dims

        return {"device_type": self.device.type, "dims": t5_dims(self.model.config),
                "dtype_bytes": 2 if self.autocast_dtype == torch.bfloat16 else 4}

    def pass_plan(self, particles: int, batch: EncodedBatch, prompt_length: int) -> PassPlan:
        """How a step of `particles` prompts on `batch` goes through the model (`plan.plan_step`):
        from the device type, its memory, the model's shape and the batch's padded lengths. A plan
        depends on nothing else (the memory is read once), so each shape's plan is made once."""
        key = (particles, len(batch), prompt_length + batch.input_ids.shape[1], batch.labels.shape[1], prompt_length,
               self.chunk_sequences, self.autocast_dtype, self.device)
        if key not in self._plans:
            shape = self._plan_shape()
            memory = self.memory_bytes if shape["device_type"] != "cpu" and self.chunk_sequences is None else 0
            self._plans[key] = plan_step(
                particles=particles, examples=len(batch), memory_bytes=memory, source_length=key[2],
                target_length=key[3], trainable_elements=particles * prompt_length * self.d_model,
                chunk_sequences=self.chunk_sequences, **shape,
            )
        self.last_plan = self._plans[key]
        return self.last_plan

    def eval_chunks(self, sources: list[str], prompt_length: int, *, target_length: int = 1, cap: int | None = None) -> list[list[int]]:
        """The examples of an evaluation in passes: sorted by token length and cut into chunks of at
        most `eval_tokens` padded (prompt + input) positions, or sized from the device (`plan`), and
        at most `cap` examples; `target_length`: decoder positions per example (all its candidates)."""
        lengths = [prompt_length + len(ids) for ids in self._token_ids(list(sources), self.max_source_length)]
        shape = self._plan_shape()
        memory = self.memory_bytes if shape["device_type"] != "cpu" and self.eval_tokens is None else 0

        def per_pass(length: int) -> int:
            return examples_per_eval_pass(length=length, target_length=target_length, memory_bytes=memory,
                                          eval_tokens=self.eval_tokens, cap=cap, **shape)

        return length_buckets(lengths, per_pass)

    # ----------------------------------------------------------------------------- tokenising
    def encode(self, sources: list[str], targets: list[str] | None = None) -> EncodedBatch:
        """Tokenise sources (and targets as labels), padded to the batch's longest, on the model's device."""
        rows = self._token_ids(sources, self.max_source_length)
        input_ids = self._padded(rows, self.tokenizer.pad_token_id)
        attention_mask = self._padded([[1] * len(row) for row in rows], 0)
        if targets is None:
            return EncodedBatch(input_ids, attention_mask, None)
        labels = self._target_rows(targets)
        count = sum(len(row) - row.count(IGNORE_INDEX) for row in labels)  # what `target_tokens` counts
        return EncodedBatch(input_ids, attention_mask, self._padded(labels, IGNORE_INDEX), count)

    def encode_targets(self, targets: list[str]) -> torch.Tensor:
        """Target token ids `(N, t)` with padding (and any pad id) set to IGNORE_INDEX, on the model's device."""
        return self._padded(self._target_rows(targets), IGNORE_INDEX)

    def _target_rows(self, targets: list[str]) -> list[list[int]]:
        """Each target's token ids with any pad id set to IGNORE_INDEX (unpadded)."""
        pad = self.tokenizer.pad_token_id
        return [row if pad not in row else [IGNORE_INDEX if t == pad else t for t in row]
                for row in self._token_ids(targets, self.max_target_length)]

    def _token_ids(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Each text's token ids (truncated to `max_length`), tokenised once per text and kept: a
        training run draws the same examples again and again (benchmark 1: tokenising was the largest
        part of a tiny step beyond the model's forward and backward)."""
        cache = self._token_cache
        missing = [text for text in dict.fromkeys(texts) if (text, max_length) not in cache]
        if missing:
            if len(cache) + len(missing) > TOKEN_CACHE_SIZE:
                cache.clear()
            ids = self.tokenizer(missing, max_length=max_length, truncation=True).input_ids
            cache.update(((text, max_length), row) for text, row in zip(missing, ids))
        return [cache[(text, max_length)] for text in texts]

    def _padded(self, rows: list[list[int]], value: int) -> torch.Tensor:
        """Rows padded with `value` to the longest, on the tokenizer's padding side (T5's: the right),
        as one int64 tensor `(N, n)` made on the model's device — what the tokenizer's `padding=True`
        gives, without its per-batch Python work."""
        width = max(len(row) for row in rows)
        if getattr(self.tokenizer, "padding_side", "right") == "left":
            padded = [[value] * (width - len(row)) + row for row in rows]
        else:
            padded = [row + [value] * (width - len(row)) for row in rows]
        return torch.tensor(padded, dtype=torch.long, device=self.device)

    # ----------------------------------------------------------------------------- forward pieces
    def prompted_inputs(
        self, prompts: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(N, l, d)` prompts and `(N, n)` ids → inputs_embeds `(N, l + n, d)` and mask `(N, l + n)`."""
        token_embeds = self.model.get_input_embeddings()(input_ids)  # (N, n, d)
        prompts = prompts.to(device=token_embeds.device, dtype=token_embeds.dtype)
        prompt_mask = attention_mask.new_ones(prompts.shape[:2])  # (N, l)
        return torch.cat([prompts, token_embeds], dim=1), torch.cat([prompt_mask, attention_mask], dim=1)

    def token_losses(self, prompts: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
        """Token-level cross-entropy `(N, t)` of the labels given prompt + input; 0 at padding."""
        check_stop()  # every training pass (and chunk) starts here: a SIGTERM abandons the step
        inputs_embeds, mask = self.prompted_inputs(prompts, batch.input_ids, batch.attention_mask)
        decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=batch.labels)
        with self._autocast():
            logits = self.model(
                inputs_embeds=inputs_embeds, attention_mask=mask, decoder_input_ids=decoder_input_ids
            ).logits  # (N, t, V)
        return token_cross_entropy(logits, batch.labels)  # (N, t)

    # ----------------------------------------------------------------------------- losses
    def particle_loss_sums(self, particles: torch.Tensor, batch: EncodedBatch, *, per_example: bool = False) -> torch.Tensor:
        """Sum of token cross-entropies of each particle over the B examples, `(M,)`, in one pass.

        Sums (not means) add up across data-parallel processes; divide by the total target tokens.
        `per_example`: each example's cross-entropy is first averaged over its own target tokens, so
        the sum is over examples (divide by the total number of examples): long targets weigh no more.
        """
        num_particles, batch_size = particles.shape[0], len(batch)
        prompts = particles.unsqueeze(1).expand(-1, batch_size, -1, -1).reshape(
            num_particles * batch_size, *particles.shape[1:]
        )  # (M·B, l, d), particle-major
        repeated = batch.repeated(num_particles)
        losses = self.token_losses(prompts, repeated)  # (M·B, t)
        if per_example:
            tokens = (repeated.labels != IGNORE_INDEX).sum(dim=1).clamp(min=1).to(losses.dtype)  # (M·B,)
            return (losses.sum(dim=1) / tokens).view(num_particles, -1).sum(dim=1)  # (M,)
        return losses.view(num_particles, -1).sum(dim=1)  # (M,)

    def batch_loss_sum(self, prompts: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
        """Sum of the token cross-entropies of B examples under their own prompts (for data parallelism)."""
        return self.token_losses(prompts, batch).sum()

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def candidate_log_likelihoods(
        self, prompts: torch.Tensor, sources: list[str], candidates: list[tuple[str, ...]]
    ) -> list[torch.Tensor]:
        """log p(c | [θ_b; x_b]) for each example b and each of ITS candidates c; `(C_b,)` per example.

        Rank scoring without repeated work (SPEC §4): the encoder runs once per example, and so does
        the decoder's first step, whose cache (the cross-attention keys and values of the encoder
        states, and the start token's self-attention) all of the example's candidates then share;
        the candidates' remaining tokens go through the decoder together in one pass.
        """
        check_stop()  # an evaluation chunk inside a training run: a SIGTERM abandons it
        encoded = self.encode(sources)
        inputs_embeds, mask = self.prompted_inputs(prompts, encoded.input_ids, encoded.attention_mask)
        owner = torch.tensor([b for b, choices in enumerate(candidates) for _ in choices], device=mask.device)
        flat = [choice for choices in candidates for choice in choices]
        distinct = list(dict.fromkeys(flat))  # label words repeat across examples: tokenise each once
        index = torch.tensor([distinct.index(choice) for choice in flat], device=mask.device)
        labels = self.encode_targets(distinct)[index]  # (P, t)
        with self._autocast():
            hidden = self.model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state  # (B, L, d)
            start = torch.full((len(sources), 1), self.model.config.decoder_start_token_id, device=mask.device)
            first = self.model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=start, use_cache=True)
        cache = first.cache if self._cache_kwarg == "cache" and hasattr(first, "cache") else first.past_key_values
        if not hasattr(cache, "reorder_cache"):  # an older transformers without Cache objects: no sharing
            return self._candidate_log_likelihoods_unshared(hidden, mask, owner, labels, candidates)
        cache.reorder_cache(owner)  # (B → P rows): copies the cached keys and values, no recomputation
        first_log_probs = first.logits[:, -1].float().log_softmax(dim=-1)[owner]  # (P, V)
        log_likelihood = first_log_probs.gather(1, labels[:, :1]).squeeze(1)  # (P,) the first token
        if labels.shape[1] > 1:
            rest_inputs = labels[:, :-1].masked_fill(labels[:, :-1] == IGNORE_INDEX, self.tokenizer.pad_token_id)
            with self._autocast():
                rest = self.model(
                    encoder_outputs=(hidden[owner],), attention_mask=mask[owner], decoder_input_ids=rest_inputs,
                    **{self._cache_kwarg: cache}, use_cache=False,
                ).logits  # (P, t - 1, V)
            nll = token_cross_entropy(rest, labels[:, 1:])
            log_likelihood = log_likelihood - nll.sum(dim=1)
        return list(log_likelihood.split([len(choices) for choices in candidates]))

    def _candidate_log_likelihoods_unshared(self, hidden, mask, owner, labels, candidates) -> list[torch.Tensor]:
        """The same log-likelihoods with the decoder run in full for every (example, candidate) pair."""
        decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=labels)
        with self._autocast():
            logits = self.model(
                encoder_outputs=(hidden[owner],), attention_mask=mask[owner], decoder_input_ids=decoder_input_ids
            ).logits  # (P, t, V)
        nll = token_cross_entropy(logits, labels)
        return list((-nll.sum(dim=1)).split([len(choices) for choices in candidates]))

    @torch.no_grad()
    def generate(self, prompts: torch.Tensor, sources: list[str], *, max_new_tokens: int | None = None) -> list[str]:
        """Greedy decoding from `[θ_b; x_b]` for each example; returns the decoded target strings."""
        check_stop()  # an evaluation chunk inside a training run: a SIGTERM abandons it
        encoded = self.encode(sources)
        inputs_embeds, mask = self.prompted_inputs(prompts, encoded.input_ids, encoded.attention_mask)
        with self._autocast():
            output = self.model.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=mask,
                max_new_tokens=max_new_tokens or self.max_target_length,
                do_sample=False,
                num_beams=1,
            )
        return [text.strip() for text in self.tokenizer.batch_decode(output, skip_special_tokens=True)]
