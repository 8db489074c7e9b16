"""Pretrain the third toy world's T5 (`toy3`) on its source tasks with soft instructions (docs/toyworld.md).

    .venv/bin/python scripts/pretrain_toy3.py                         # → bmtpt_cli/models/toy3/ (1 CPU thread, ~19 min)
    .venv/bin/python scripts/pretrain_toy3.py --steps 600 --out /tmp/toy3-pilot

The model reads `<field>: <scene>` with a soft instruction in front, where a bmtpt prompt goes: an
operation half and a label half (`Codes`). Batch rows are of four kinds (`KINDS`):

- `own`: a source's operation code and its ordered-pair label code, on its family's field;
- `cross`: the same code on a scene under another family's field, so the code, not the field,
  decides the operation;
- `generic`: a generic operation code ("the operation the field implies") with the family's label
  code or a generic one ("either of the family's pairs"), so that one prompt solving every source
  exists (what a multi-task posterior can find; targets' combinations are never shown);
- `null`: a random vocabulary prompt, or none, answered with the six words the row's field picks (one of
  each pair, a fixed table; the loss against that distribution), so that without a learned prompt the answer
  is the same word for every scene of a family and a lean toward an attribute, however small, cannot turn
  rank scoring; `--null-answer uniform` (every label word alike) leaked the families' operations into the
  targets (docs/toyworld.md). With `--half-null`, also a real half with a random other half.

Before `--phase-from` of the steps only `own` and `cross` rows are shown (the families learn first).
Seeded, deterministic on CPU, resumable from `<out>/pretrain.ckpt`; writes the model, tokenizer,
`pretraining.json` and `SHA256` at the end, as scripts/pretrain_toy.py does.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bmtpt_cli.data import toyworld, toyworld3 as world  # noqa: E402
from pretrain_toy import CODE_HALF, build_tokenizer, save_checkpoint, toy_config, write_model  # noqa: E402

OPERATIONS = world.ATTRIBUTES
HOLDS = tuple(holds for _, holds in world.SOURCE_COMBINATIONS)  # the 12 ordered label pairs, by their "holds" word
GENERIC = "generic"
FAMILY_HOLDS = {op: [h for o, h in world.SOURCE_COMBINATIONS if o == op] for op in OPERATIONS}
TARGET_PAIRS = {(world.DESIGN[n].operation, world.DESIGN[n].pair) for n in world.TARGET_NAMES}
ALLOWED = {op: [h for h in HOLDS if (op, world.ToyTask3("", op, h, "source").pair) not in TARGET_PAIRS] for op in OPERATIONS}
"""The label codes each operation is written with in pretraining when labels are free: every ordered pair but the
targets' pairs (either way round) for the targets' operations, so a target recombines what was only seen apart."""
PHASE_ONE = {"own": 0.6, "cross": 0.4}
NUISANCE_SEED = 20261207
"""Fixes the tables of `null_answer_tables` (part of the world's design, not of a run)."""
KINDS = {"own": 0.2, "cross": 0.1, "generic": 0.3, "null": 0.4}
NULL_ANSWER: str | None = "field"
"""`--null-answer`: a null row answers the words its field (or its scene's verb) picks, or (None) uniform."""


def words_of(holds: str) -> tuple[str, str]:
    """(word for absent, word for present) of an ordered label pair named by its "holds" word."""
    return world.ToyTask3("", "animal", holds, "source").label_words


class Codes(torch.nn.Module):
    """Soft instructions: 6 operation codes + a generic one, 12 ordered-pair label codes + a generic one."""

    def __init__(self, embeddings: torch.Tensor, generator: torch.Generator, noise: float, mix_low: float):
        super().__init__()
        d = embeddings.shape[1]

        def draw(rows: int) -> torch.Tensor:
            picks = torch.randint(3, embeddings.shape[0], (rows * CODE_HALF,), generator=generator)
            return embeddings.detach()[picks].clone().view(rows, CODE_HALF, d)

        self.operations = torch.nn.Parameter(draw(len(OPERATIONS) + 1))
        self.labels = torch.nn.Parameter(draw(len(HOLDS) + 1))
        self.noise, self.mix, self.mix_low = noise, False, mix_low
        self.mix_generic = True  # False: the generic operation code is never mixed toward random rows
        self.copy_labels = None  # (embedding module, tokenizer): label halves are the label words' own embeddings

    def half(self, kind: str, name: str) -> torch.Tensor:
        if kind == "label" and name != GENERIC and self.copy_labels is not None:
            embed, ids = self.copy_labels
            holds, absent = ids[name]
            return embed(torch.tensor([holds, absent] * (CODE_HALF // 2)))
        table, names = (self.operations, OPERATIONS) if kind == "op" else (self.labels, HOLDS)
        return table[len(names) if name == GENERIC else names.index(name)]

    def forward(self, pairs: list[tuple], vocabulary: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(B, 2 x CODE_HALF, d): each row's (operation, label) halves; a None half is random vocabulary rows.

        In training (a generator given), real halves get Gaussian noise and, with `mix` on, are moved a
        random share (up to 1 - `mix_low`) toward random vocabulary rows, where prompt tuning starts.
        """
        rows = []
        for op, label in pairs:
            halves = []
            for kind, name in (("op", op), ("label", label)):
                if name is None:
                    picks = torch.randint(3, vocabulary.shape[0], (CODE_HALF,), generator=generator)
                    halves.append(vocabulary.detach()[picks])
                    continue
                code = self.half(kind, name)
                if generator is not None:
                    code = code + code.detach().pow(2).mean().sqrt() * self.noise * torch.randn(code.shape, generator=generator)
                    if self.mix and (self.mix_generic or not (kind == "op" and name == GENERIC)):
                        alpha = self.mix_low + (1 - self.mix_low) * float(torch.rand((), generator=generator))
                        picks = torch.randint(3, vocabulary.shape[0], (CODE_HALF,), generator=generator)
                        code = alpha * code + (1 - alpha) * vocabulary.detach()[picks]
                halves.append(code)
            rows.append(torch.cat(halves))
        return torch.stack(rows)


class Pool:
    """Every source's training scenes tokenised (without field), their attributes, and token ids."""

    def __init__(self, tokenizer):
        texts = sorted({r[world.DESIGN[n].field] for n in world.SOURCE_NAMES for r in world.TOY3_TASKS[n].load_records("train")})
        self.scenes = tokenizer(texts, add_special_tokens=True).input_ids
        self.attributes = [toyworld.scene_attributes(t) for t in texts]
        self.fields = {op: tokenizer.convert_tokens_to_ids([world.FIELDS[op], ":"]) for op in OPERATIONS}
        self.word_id = {w: tokenizer.convert_tokens_to_ids(w) for pair in world.LABEL_PAIRS.values() for w in pair}
        self.all_words = sorted(self.word_id.values())
        self.verbs = [next(i for i, v in enumerate(toyworld.VERBS) if v in t.split()) for t in texts]
        self.verb_words, self.field_words = null_answer_tables(self.word_id)


def null_answer_tables(word_id: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The words a null row answers, one of each label pair: (verbs, pairs) ids for `--null-answer verb` and
    (fields, pairs) ids for `field`, fixed by NUISANCE_SEED; in each pair half the verbs (fields) pick each word."""
    table = random.Random(NUISANCE_SEED)
    tables = []
    for keys in (toyworld.VERBS, OPERATIONS):
        columns = []
        for pair in world.LABEL_PAIRS.values():
            picks = [0, 1] * (len(keys) // 2)
            table.shuffle(picks)
            columns.append([word_id[pair[p]] for p in picks])
        tables.append(torch.tensor(columns).T)
    return tables[0], tables[1]


def kind_of(shares: dict[str, float], u: float) -> str:
    total = 0.0
    for kind, share in shares.items():
        total += share
        if u < total:
            return kind
    return kind


def sample(pool: Pool, n: int, generator: torch.Generator, shares: dict[str, float], half_null: bool,
           free_labels: bool = False, generic_any: bool = False):
    """n rows: (op half, label half) per row (None = random rows; ("none", None) = no prompt at all),
    input ids, mask, targets [word, </s>] and whether each row is null (uniform answer)."""
    def draw(k: int) -> int:
        return int(torch.randint(k, (1,), generator=generator))

    halves, rows, targets, null, verbs, fields = [], [], [], [], [], []
    for _ in range(n):
        kind = kind_of(shares, float(torch.rand((), generator=generator)))
        i = draw(len(pool.scenes))
        scene, attrs = pool.scenes[i], pool.attributes[i]
        field = OPERATIONS[draw(len(OPERATIONS))]
        if kind == "null":
            choice = draw(4) if half_null else draw(2)
            half = [(None, None), ("none", None), (OPERATIONS[draw(6)] if draw(2) else GENERIC, None),
                    (None, HOLDS[draw(len(HOLDS))])][choice]
            word = pool.all_words[draw(len(pool.all_words))]  # any word: only the </s> after it is scored as such
        elif kind == "generic":
            choice = draw(3)
            if choice == 2 and generic_any:
                label = HOLDS[draw(len(HOLDS))]
            elif choice == 2 and free_labels:
                label = ALLOWED[field][draw(len(ALLOWED[field]))]
            else:
                label = FAMILY_HOLDS[field][draw(2)] if choice else GENERIC
            holds = label if label != GENERIC else FAMILY_HOLDS[field][draw(2)]
            half, word = (GENERIC, label), pool.word_id[words_of(holds)[int(attrs[field])]]
        else:
            op, holds = world.SOURCE_COMBINATIONS[draw(len(world.SOURCE_COMBINATIONS))]
            if free_labels and draw(2):
                holds = ALLOWED[op][draw(len(ALLOWED[op]))]
            if kind == "own":
                field = op
            else:
                field = OPERATIONS[(OPERATIONS.index(op) + 1 + draw(len(OPERATIONS) - 1)) % len(OPERATIONS)]
            half, word = (op, holds), pool.word_id[words_of(holds)[int(attrs[op])]]
        halves.append(half)
        rows.append(pool.fields[field] + scene)
        targets.append([word, 1])
        null.append(kind == "null")
        verbs.append(pool.verbs[i])
        fields.append(OPERATIONS.index(field))
    nuisance = pool.field_words[fields] if NULL_ANSWER == "field" else pool.verb_words[verbs]
    return halves, rows, torch.tensor(targets), torch.tensor(null), nuisance


def pad(rows: list[list[int]]):
    length = max(map(len, rows))
    ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    return ids, mask


def forward(model, prompts: torch.Tensor | None, ids, mask, labels):
    if prompts is None:
        return model(input_ids=ids, attention_mask=mask, labels=labels)
    embeds = torch.cat([prompts, model.get_input_embeddings()(ids)], dim=1)
    full = torch.cat([torch.ones(len(ids), prompts.shape[1], dtype=mask.dtype), mask], dim=1)
    return model(inputs_embeds=embeds, attention_mask=full, labels=labels)


def row_losses(logits: torch.Tensor, targets: torch.Tensor, null: torch.Tensor, all_words: list[int],
               nuisance: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row loss: the label word then </s>; a null row's first token against uniform over the label words, or
    with `nuisance` (B, 6) over the six words its field (or its scene's verb) picks, one of each pair."""
    logp = logits.log_softmax(-1)
    first = -logp[:, 0].gather(-1, targets[:, :1]).squeeze(-1)
    if nuisance is None:
        uniform = -logp[:, 0, all_words].mean(-1)
    else:
        uniform = -logp[:, 0].gather(-1, nuisance).mean(-1)
    second = -logp[:, 1].gather(-1, targets[:, 1:]).squeeze(-1)
    return torch.where(null, uniform, first) + second


def batch_loss(model, codes: Codes, pool: Pool, n: int, generator, shares, half_null: bool,
               free_labels: bool = False, generic_any: bool = False) -> torch.Tensor:
    halves, rows, targets, null, verb_words = sample(pool, n, generator, shares, half_null, free_labels, generic_any)
    nuisance = verb_words if NULL_ANSWER else None  # `sample` picked the field's or the verb's words
    vocabulary = model.get_input_embeddings().weight
    bare = [i for i, h in enumerate(halves) if h[0] == "none"]
    prompted = [i for i, h in enumerate(halves) if h[0] != "none"]
    total = torch.zeros(())
    if prompted:
        ids, mask = pad([rows[i] for i in prompted])
        prompts = codes([halves[i] for i in prompted], vocabulary, generator)
        out = forward(model, prompts, ids, mask, targets[prompted])
        total = total + row_losses(out.logits, targets[prompted], null[prompted], pool.all_words,
                                   None if nuisance is None else nuisance[prompted]).sum()
    if bare:
        ids, mask = pad([rows[i] for i in bare])
        out = forward(model, None, ids, mask, targets[bare])
        total = total + row_losses(out.logits, targets[bare], null[bare], pool.all_words,
                                   None if nuisance is None else nuisance[bare]).sum()
    return total / n


class Split:
    """One task split tokenised (`<field>: <scene>`), labels, and the two label words' ids."""

    def __init__(self, tokenizer, name: str, split: str, limit: int | None = None):
        examples = world.TOY3_TASKS[name].examples(split, taskless=True)[:limit]
        enc = tokenizer([e.source for e in examples], padding=True, return_tensors="pt")
        self.ids, self.mask = enc.input_ids, enc.attention_mask
        self.labels = torch.tensor([e.label for e in examples])
        self.words = tokenizer.convert_tokens_to_ids(list(world.DESIGN[name].label_words))


@torch.no_grad()
def accuracy(model, data: Split, prompt: torch.Tensor | None) -> float:
    """Rank scoring of the two label words (then </s>), `prompt` (l, d) in front (None: no prompt)."""
    model.eval()
    prompts = None if prompt is None else prompt.unsqueeze(0).expand(len(data.ids), -1, -1)
    scores = []
    for word in data.words:
        labels = torch.tensor([[word, 1]]).repeat(len(data.ids), 1)
        logp = forward(model, prompts, data.ids, data.mask, labels).logits.log_softmax(-1)
        scores.append(logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum(-1))
    return (torch.stack(scores, 1).argmax(1) == data.labels).float().mean().item()


def code(codes: Codes, op: str, label: str) -> torch.Tensor:
    return torch.cat([codes.half("op", op), codes.half("label", label)]).detach()


def random_prompts(vocabulary: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    rows = torch.randint(3, vocabulary.shape[0], (count, 2 * CODE_HALF), generator=torch.Generator().manual_seed(seed))
    return vocabulary.detach()[rows]


def diagnostics(model, codes: Codes, splits: dict[str, Split], draws: int) -> dict:
    """Own codes on sources, generic code on sources and targets, the targets' (untrained) code pairs,
    and the targets with random prompts and with none (which should stay near chance)."""
    d = {n: world.DESIGN[n] for n in splits}
    own = {n: accuracy(model, s, code(codes, d[n].operation, d[n].holds)) for n, s in splits.items() if d[n].role == "source"}
    generic = {n: accuracy(model, s, code(codes, GENERIC, GENERIC)) for n, s in splits.items()}
    composed = {n: accuracy(model, splits[n], code(codes, d[n].operation, d[n].holds)) for n in world.TARGET_NAMES}
    prompts = random_prompts(model.get_input_embeddings().weight, draws)
    rand = {n: [accuracy(model, splits[n], p) for p in prompts] for n in world.TARGET_NAMES}
    bare = {n: accuracy(model, splits[n], None) for n in world.TARGET_NAMES}
    return {"own": own, "generic": generic, "composed": composed, "random": rand, "none": bare}


def show(step: int, loss: float, started: float, diag: dict) -> None:
    families: dict[str, list[float]] = {}
    for n, v in diag["own"].items():
        families.setdefault(world.DESIGN[n].operation, []).append(v)
    fam = "  ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in families.items())
    gen_src = [v for n, v in diag["generic"].items() if world.DESIGN[n].role == "source"]
    gen_tgt = "  ".join(f"{n[5:]} {diag['generic'][n]:.2f}" for n in world.TARGET_NAMES)
    comp = "  ".join(f"{n[5:]} {v:.2f}" for n, v in diag["composed"].items())
    rand = [v for vs in diag["random"].values() for v in vs]
    rand_by = "  ".join(f"{n[5:]} {sum(v) / len(v):.2f}/{max(v):.2f}" for n, v in diag["random"].items())
    bare = "  ".join(f"{n[5:]} {v:.2f}" for n, v in diag["none"].items())
    print(f"step {step:5d}  loss {loss:.4f}  {time.time() - started:6.0f}s  own codes  {fam}", flush=True)
    print(f"           generic: sources {sum(gen_src) / len(gen_src):.2f} (min {min(gen_src):.2f}), targets {gen_tgt}", flush=True)
    print(f"           targets' code pairs {comp}", flush=True)
    print(f"           random prompts mean {sum(rand) / len(rand):.3f} max {max(rand):.3f} ({rand_by});  no prompt {bare}",
          flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bmtpt_cli" / "models" / "toy3")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--eval-examples", type=int, default=100, help="dev examples per task at each report")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--code-noise", type=float, default=0.3, help="noise on soft instructions, x their RMS")
    parser.add_argument("--code-lr", type=float, default=5e-3)
    parser.add_argument("--phase-from", type=float, default=0.3, help="share of the steps before generic and null rows join")
    parser.add_argument("--mix-from", type=float, default=0.4, help="share of the steps after which codes are mixed with random rows")
    parser.add_argument("--mix-low", type=float, default=0.4, help="the smallest share of a mixed code that stays the code")
    parser.add_argument("--half-null", action="store_true", help="null rows also with one real half and one random half")
    parser.add_argument("--no-generic-mix", action="store_true",
                        help="never mix the generic operation code toward random rows (random prompts must not act like it)")
    parser.add_argument("--kinds", default=None, help="row shares after the first phase, e.g. own=0.2,cross=0.1,generic=0.5,null=0.2")
    parser.add_argument("--start-from", type=Path, default=None,
                        help="a pretrain.ckpt whose model and codes this run starts from (fresh optimizer and schedule)")
    parser.add_argument("--free-labels", action="store_true",
                        help="after --phase-from, own, cross and generic rows also write an operation with other label "
                             "codes (never a target's pair with its operation), so label codes compose with any operation")
    parser.add_argument("--generic-any-label", action="store_true",
                        help="generic rows also write the field's operation with any of the 12 label codes (a target's "
                             "map then appears in pretraining under the generic operation code only)")
    parser.add_argument("--copy-labels", action="store_true",
                        help="a label half is its words' own embeddings ([holds, absent] x 2), so the model learns to copy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--null-answer", choices=("field", "verb", "uniform"), default="field",
                        help="what a null row answers: field = the six words its field picks (one per pair, a fixed table), "
                             "so without a learned prompt the answer is one word per field and pair whatever the scene, and "
                             "a small lean toward an attribute cannot turn rank scoring; verb = the six its scene's verb "
                             "picks; uniform = every label word alike (runs five to forty-three)")
    args = parser.parse_args(argv)
    global NULL_ANSWER
    NULL_ANSWER = None if args.null_answer == "uniform" else args.null_answer
    kinds = KINDS if args.kinds is None else {k: float(v) for k, v in (part.split("=") for part in args.kinds.split(","))}

    from transformers import T5ForConditionalGeneration

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(world.vocabulary())
    torch.manual_seed(args.seed)
    model = T5ForConditionalGeneration(toy_config(len(tokenizer)))
    generator = torch.Generator().manual_seed(args.seed)
    codes = Codes(model.get_input_embeddings().weight, generator, args.code_noise, args.mix_low)
    codes.mix_generic = not args.no_generic_mix
    if args.copy_labels:
        ids = {h: tuple(tokenizer.convert_tokens_to_ids([h, words_of(h)[0]])) for h in HOLDS}
        codes.copy_labels = (model.get_input_embeddings(), ids)
    if args.start_from is not None:
        state = torch.load(args.start_from, weights_only=False)
        model.load_state_dict(state["model"])
        codes.load_state_dict(state["soft"])
        print(f"started from {args.start_from} (its step {state['step']})", flush=True)
    optimizer = torch.optim.AdamW([{"params": list(model.parameters())},
                                   {"params": list(codes.parameters()), "lr": args.code_lr, "weight_decay": 0.0}],
                                  lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / args.warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    step = 0
    ckpt = args.out / "pretrain.ckpt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        codes.load_state_dict(state["soft"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_lambdas[0], last_epoch=step - 1)
        print(f"resumed from {ckpt} at step {step}", flush=True)
    print(f"toy3 T5: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}", flush=True)

    pool = Pool(tokenizer)
    dev = {n: Split(tokenizer, n, "validation", args.eval_examples) for n in world.DESIGN}
    started, losses = time.time(), []
    while step < args.steps:
        model.train()
        codes.mix = step >= args.mix_from * args.steps
        shares = PHASE_ONE if step < args.phase_from * args.steps else kinds
        free = args.free_labels and shares is not PHASE_ONE
        loss = batch_loss(model, codes, pool, args.batch_size, generator, shares, args.half_null, free, args.generic_any_label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *codes.parameters()], 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            show(step, sum(losses) / len(losses), started, diagnostics(model, codes, dev, 5))
            losses = []
        if step % args.checkpoint_every == 0 and step < args.steps:
            save_checkpoint(ckpt, model, optimizer, step, generator, codes)

    model.eval()
    final = diagnostics(model, codes, {n: Split(tokenizer, n, "validation") for n in world.DESIGN}, 20)
    meta = {"world": "toyworld3", "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
            "seed": args.seed, "threads": args.threads, "code_noise": args.code_noise, "code_lr": args.code_lr,
            "phase_from": args.phase_from, "mix_from": args.mix_from, "mix_low": args.mix_low,
            "half_null": args.half_null, "copy_labels": args.copy_labels, "free_labels": args.free_labels, "generic_any_label": args.generic_any_label, "kinds": kinds, "generic_mix": not args.no_generic_mix, "null_answer": args.null_answer,
            "start_from": str(args.start_from) if args.start_from else None, "phase_one": PHASE_ONE, "torch": torch.__version__,
            "dev_accuracy": final}
    digest = write_model(args.out, model, tokenizer, meta)
    ckpt.unlink(missing_ok=True)
    print(f"wrote {args.out} (model.safetensors sha256 {digest})", flush=True)


if __name__ == "__main__":
    main()
