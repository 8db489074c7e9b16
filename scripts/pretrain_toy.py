"""Build the toy world's tokenizer and pretrain the shipped `toy` T5 on the world's source tasks.

    .venv/bin/python scripts/pretrain_toy.py                     # → bmtpt_cli/models/toy/ (~18 min, 1 CPU thread)
    .venv/bin/python scripts/pretrain_toy.py --shape toy-wide    # → bmtpt_cli/models/toy-wide/ (d 192, lr 5e-4)
    .venv/bin/python scripts/pretrain_toy.py --steps 300 --out /tmp/toy-pilot   # a pilot

The model reads each source task's training records with the task's instruction in front, half of
each batch as text (`does the text mention a tool ? answer right or wrong . text: ...`) and half as
a soft instruction (learned vectors where a bmtpt prompt goes: an operation code, then a label-pair
code; `SoftInstructions`), and learns to write the label word. The target tasks, and their
instructions, are never shown (docs/toyworld.md). Every `--eval-every` steps it prints each source
family's dev accuracy (rank scoring of the two label words, with the instruction) and, as
diagnostics only, the targets' accuracy with their unseen instructions and the sources' and
targets' accuracy with soft codes. Seeded and deterministic on CPU; `<out>/pretrain.ckpt` (model,
codes, optimizer, step, RNG states, written atomically) lets an interrupted run continue with the
same numbers. At the end the checkpoint (safetensors + config + tokenizer) is written into `<out>`,
file by file atomically, with `SHA256` recording the weights' hash (tests/runner/test_toy_model.py).
The codes are not shipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld  # noqa: E402
from bmtpt_cli.runtime.files import atomic_write, write_text_atomic  # noqa: E402

SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: T5's conventions
MAX_LENGTH = 64  # tokens: every instructed input is shorter (checked)


def build_tokenizer(words=None):
    """A word-level `PreTrainedTokenizerFast` over a world's closed vocabulary (pad 0, eos 1, unk 2):
    `words`, by default the toy world's.

    Whitespace/punctuation pre-tokenisation, lower-casing, and `</s>` appended to every encoding,
    as T5's own tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIAL, *(words or toyworld.vocabulary())])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


WIDTHS = {"toy": dict(d_model=128, d_kv=32, d_ff=512), "toy-wide": dict(d_model=192, d_kv=48, d_ff=512),
          "toy-narrow": dict(d_model=96, d_kv=24, d_ff=384)}
"""The toy models' shapes: `toy`, and `toy-wide` / `toy-narrow` of other widths for cross-model transfer."""
RATES = {"toy": dict(lr=1e-3, warmup=100), "toy-wide": dict(lr=5e-4, warmup=500), "toy-narrow": dict(lr=1e-3, warmup=100)}
"""Each shape's learning rate and warm-up: toy-wide at lr 1e-3 stayed at chance for 3,250 steps; at 5e-4 with 500
warm-up steps it learned the families faster than toy (docs/toyworld.md, "A wider toy model")."""


def toy_config(vocab_size: int, shape: str = "toy"):
    """A toy T5: d 128 (`toy-wide`: 192), 4+4 layers, 4 heads, d_ff 512 (about 1.9M / 3.3M parameters), tied
    embeddings."""
    from transformers import T5Config

    return T5Config(vocab_size=vocab_size, **WIDTHS[shape], num_layers=4, num_decoder_layers=4,
                    num_heads=4, dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def instructed(name: str, split: str) -> tuple[list[str], list[int]]:
    """A task's inputs with its instruction written in front, and the label ids."""
    task, design = toyworld.TOY_TASKS[name], toyworld.DESIGN[name]
    examples = task.examples(split, taskless=True)
    return [f"{design.instruction} {e.source}" for e in examples], [e.label for e in examples]


KEYWORDS = {"animal": "animal", "food": "eat", "tool": "tool", "mood": "happy", "place": "outdoors", "time": "daylight"}
DISTRACTORS = (*toyworld.NEUTRAL, *toyworld.VERBS, "the", "a", "i", "we", "my", "our", "it", "was", "when")


def instruction_variants(name: str) -> list[str]:
    """The ways pretraining writes a source's instruction: in full, label part first, and terse.

    Only the operation and the label pair matter, wherever they stand, so a soft prompt in the
    instruction's place can find them (docs/toyworld.md).
    """
    design = toyworld.DESIGN[name]
    negative, positive = design.label_words
    phrase, answer = toyworld.OPERATION_PHRASES[design.operation], f"answer {positive} or {negative} ."
    return [design.instruction, f"{answer} {phrase}", f"{KEYWORDS[design.operation]} ? {positive} or {negative} ."]


class Encoded:
    """One task split, tokenised once: ids (N, n) padded, mask, label ids, label-word token ids.

    With `with_instruction`, each input starts with the task's instruction as text; without, it is the
    taskless input alone (`text: ...`), for a soft instruction to go in front.
    """

    def __init__(self, tokenizer, name: str, split: str, limit: int | None = None, *, with_instruction: bool = True):
        if with_instruction:
            sources, labels = instructed(name, split)
        else:
            examples = toyworld.TOY_TASKS[name].examples(split, taskless=True)
            sources, labels = [e.source for e in examples], [e.label for e in examples]
        sources, labels = sources[:limit], labels[:limit]
        enc = tokenizer(sources, padding=True, return_tensors="pt")
        assert int(enc.attention_mask.sum(1).max()) < MAX_LENGTH, f"{name}: an input is longer than {MAX_LENGTH}"
        self.name, self.input_ids, self.mask = name, enc.input_ids, enc.attention_mask
        self.labels = torch.tensor(labels)
        words = toyworld.DESIGN[name].label_words
        self.word_ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(words)))  # (2,)


class TrainStream:
    """A source's training records as token lists (text without instruction) and its instruction variants."""

    def __init__(self, tokenizer, name: str):
        examples = toyworld.TOY_TASKS[name].examples("train", taskless=True)
        self.name = name
        self.texts = tokenizer([e.source for e in examples], add_special_tokens=True).input_ids  # each ends in </s>
        self.labels = [e.label for e in examples]
        self.variants = tokenizer(instruction_variants(name), add_special_tokens=False).input_ids
        words = toyworld.DESIGN[name].label_words
        self.word_ids = tokenizer.convert_tokens_to_ids(list(words))


CODE_HALF = 4  # vectors per half of a soft instruction: operation half, label half (8 = the toy presets' l)
OPERATIONS = toyworld.ATTRIBUTES
PAIRS = tuple(toyworld.LABEL_PAIRS)


class SoftInstructions(torch.nn.Module):
    """Learned soft instructions, trained with the model: one code per operation, one per label pair.

    A source's soft instruction is `concat(operation code, label code)` (2 x CODE_HALF vectors), put
    where a soft prompt goes (before `text: ...`). Each half is shared by every source with that
    operation or that label pair, so the model learns to read a prompt's vectors for *what to
    compute* and *which words to write*, and a target (a pair of halves never seen together) is
    reachable by a soft prompt. Codes start as random vocabulary embeddings, as bmtpt's prompts do;
    Gaussian noise (`noise` x the codes' RMS) is added in training so the region around them works too.
    """

    def __init__(self, embeddings: torch.Tensor, generator: torch.Generator, noise: float):
        super().__init__()
        d = embeddings.shape[1]

        def draw(rows: int) -> torch.Tensor:
            picks = torch.randint(3, embeddings.shape[0], (rows * CODE_HALF,), generator=generator)
            return embeddings.detach()[picks].clone().view(rows, CODE_HALF, d)

        self.operations = torch.nn.Parameter(draw(len(OPERATIONS)))  # (6, CODE_HALF, d)
        self.pairs = torch.nn.Parameter(draw(len(PAIRS)))  # (4, CODE_HALF, d)
        self.noise = noise
        self.mix, self.mix_low = False, 0.25  # set on by the training loop after --mix-from of the steps

    def forward(self, names: list[str], generator: torch.Generator | None = None,
                vocabulary: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2 x CODE_HALF, d) soft instructions for task names.

        In training (a generator given): Gaussian noise, and with `mix` on each code moved a random
        share (up to 1 - `mix_low`) of the way toward a prompt of random rows of `vocabulary` (the
        token embeddings). The mixing teaches the model to answer to a prompt that is still partly
        its random vocabulary init, where prompt tuning starts, so the gradient there points toward
        the operation it asks for.
        """
        ops = torch.tensor([OPERATIONS.index(toyworld.DESIGN[n].operation) for n in names])
        pairs = torch.tensor([PAIRS.index(toyworld.DESIGN[n].labels) for n in names])
        codes = torch.cat([self.operations[ops], self.pairs[pairs]], dim=1)
        if generator is not None and self.noise > 0:
            scale = codes.detach().pow(2).mean().sqrt() * self.noise
            codes = codes + scale * torch.randn(codes.shape, generator=generator)
        if generator is not None and self.mix and vocabulary is not None:
            # a straight path from a random vocabulary prompt (where prompt tuning starts) to the code
            alpha = self.mix_low + (1 - self.mix_low) * torch.rand(codes.shape[0], 1, 1, generator=generator)
            rows = torch.randint(3, vocabulary.shape[0], codes.shape[:2], generator=generator)
            codes = alpha * codes + (1 - alpha) * vocabulary.detach()[rows]
        return codes


def sample_soft_batch(streams: list[TrainStream], batch_size: int, generator: torch.Generator):
    """A batch of text only (the soft instruction goes in front): task names, ids, mask, labels."""
    def draw(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    names, rows, targets = [], [], []
    for _ in range(batch_size):
        stream = streams[draw(len(streams))]
        i = draw(len(stream.labels))
        names.append(stream.name)
        rows.append(stream.texts[i])
        targets.append([stream.word_ids[stream.labels[i]], 1])
    length = max(map(len, rows))
    ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in rows])
    return names, ids, mask, torch.tensor(targets)


def soft_loss(model, soft: SoftInstructions, names, ids, mask, labels, generator=None):
    """Loss (or logits) with soft instructions prepended to the token embeddings, as bmtpt's runner does."""
    codes = soft(names, generator, model.get_input_embeddings().weight)
    embeds = torch.cat([codes, model.get_input_embeddings()(ids)], dim=1)
    full_mask = torch.cat([torch.ones(len(ids), codes.shape[1], dtype=mask.dtype), mask], dim=1)
    return model(inputs_embeds=embeds, attention_mask=full_mask, labels=labels)


def sample_batch(streams: list[TrainStream], distractors: list[int], batch_size: int, generator: torch.Generator):
    """A batch of (distractor words?) + instruction variant + text → label word, padded: ids, mask, labels.

    Half the inputs start with 1-5 distractor words (scene words that change no attribute) before
    the instruction, so the model learns to find the instruction wherever it starts.
    """
    def draw(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    rows, targets = [], []
    for _ in range(batch_size):
        stream = streams[draw(len(streams))]
        i = draw(len(stream.labels))
        prefix = [distractors[draw(len(distractors))] for _ in range(draw(6))] if draw(2) else []
        rows.append(prefix + stream.variants[draw(len(stream.variants))] + stream.texts[i])
        targets.append([stream.word_ids[stream.labels[i]], 1])  # label word, </s>
    length = max(map(len, rows))
    ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])  # (B, n)
    mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in rows])
    return ids, mask, torch.tensor(targets)  # (B, n), (B, n), (B, 2)


@torch.no_grad()
def accuracy(model, data: Encoded, soft: "SoftInstructions | None" = None, batch: int = 200) -> float:
    """Rank-scoring accuracy: the label word (then </s>) with the higher log-likelihood wins.

    With `soft`, the task's (noise-free) soft instruction goes in front of each input.
    """
    model.eval()
    correct = 0
    for start in range(0, len(data.labels), batch):
        mask = data.mask[start:start + batch]
        length = int(mask.sum(1).max())
        ids, mask = data.input_ids[start:start + batch, :length], mask[:, :length]
        scores = []
        for word in data.word_ids.tolist():
            labels = torch.tensor([[word, 1]]).repeat(len(ids), 1)  # (N, 2): the word, </s>
            if soft is None:
                output = model(input_ids=ids, attention_mask=mask, labels=labels)
            else:
                output = soft_loss(model, soft, [data.name] * len(ids), ids, mask, labels)
            logp = output.logits.log_softmax(-1)
            scores.append(logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum(-1))
        pred = torch.stack(scores, dim=1).argmax(dim=1)
        correct += (pred == data.labels[start:start + batch]).sum().item()
    return correct / len(data.labels)


def report(model, evals: dict[str, Encoded], step: int, loss: float, started: float,
           soft=None, plain: dict[str, Encoded] | None = None) -> dict[str, float]:
    scores = {name: accuracy(model, data) for name, data in evals.items()}
    families: dict[str, list[float]] = {}
    for name, score in scores.items():
        design = toyworld.DESIGN[name]
        key = design.operation if design.role == "source" else f"target:{name}"
        families.setdefault(key, []).append(score)
    cells = "  ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in families.items())
    print(f"step {step:5d}  loss {loss:.4f}  {time.time() - started:6.0f}s  dev acc  {cells}", flush=True)
    if soft is not None:
        soft_scores = {name: accuracy(model, data, soft) for name, data in plain.items()}
        src = [v for k, v in soft_scores.items() if toyworld.DESIGN[k].role == "source"]
        cells = "  ".join(f"{k[4:]} {v:.2f}" for k, v in soft_scores.items() if toyworld.DESIGN[k].role == "target")
        print(f"           soft codes: sources {sum(src) / len(src):.2f} (min {min(src):.2f})  targets {cells}", flush=True)
    return scores


def save_checkpoint(path: Path, model, optimizer, step: int, generator: torch.Generator, soft=None) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "soft": soft.state_dict() if soft is not None else None,
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def write_model(out: Path, model, tokenizer, meta: dict) -> str:
    """Save config, weights and tokenizer into `out` (each file replaced atomically); return the weights' sha256."""
    with tempfile.TemporaryDirectory(dir=out) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        for file in sorted(Path(staging).iterdir()):
            atomic_write(out / file.name, lambda tmp, f=file: shutil.copyfile(f, tmp))
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    write_text_atomic(out / "pretraining.json", json.dumps(meta, indent=2) + "\n")
    write_text_atomic(out / "SHA256", f"{digest}  model.safetensors\n")
    return digest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: bmtpt_cli/models/<shape>, the shipped folder")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: the shape's (RATES)")
    parser.add_argument("--warmup", type=int, default=None, help="default: the shape's (RATES)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--eval-examples", type=int, default=60, help="dev examples per task at each report")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--soft-fraction", type=float, default=0.5,
                        help="share of each batch read with soft instructions instead of text (0 = the first design)")
    parser.add_argument("--code-noise", type=float, default=0.3, help="noise on soft instructions, x their RMS")
    parser.add_argument("--code-lr", type=float, default=5e-3)
    parser.add_argument("--mix-from", type=float, default=0.4,
                        help="share of the steps after which soft instructions are mixed with random prompts (1: never)")
    # One thread: on a shared, loaded 2-core machine two OpenMP threads made a step 5-15x slower.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape", choices=sorted(WIDTHS), default="toy",
                        help="the model's width: toy (d 128), toy-wide (d 192) or toy-narrow (d 96), the same world and recipe")
    args = parser.parse_args(argv)
    args.out = args.out or ROOT / "bmtpt_cli" / "models" / args.shape
    args.lr = RATES[args.shape]["lr"] if args.lr is None else args.lr
    args.warmup = RATES[args.shape]["warmup"] if args.warmup is None else args.warmup

    from transformers import T5ForConditionalGeneration

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    torch.manual_seed(args.seed)
    model = T5ForConditionalGeneration(toy_config(len(tokenizer), args.shape))
    generator = torch.Generator().manual_seed(args.seed)
    soft = SoftInstructions(model.get_input_embeddings().weight, generator, args.code_noise)
    optimizer = torch.optim.AdamW([{"params": list(model.parameters())},
                                   {"params": list(soft.parameters()), "lr": args.code_lr, "weight_decay": 0.0}],
                                  lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / args.warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    step = 0
    ckpt = args.out / "pretrain.ckpt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        if state.get("soft") is not None:
            soft.load_state_dict(state["soft"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_lambdas[0], last_epoch=step - 1)
        print(f"resumed from {ckpt} at step {step}", flush=True)
    print(f"toy T5: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}", flush=True)

    streams = [TrainStream(tokenizer, name) for name in toyworld.SOURCE_NAMES]
    distractors = tokenizer.convert_tokens_to_ids(list(DISTRACTORS))
    evals = {name: Encoded(tokenizer, name, "validation", args.eval_examples) for name in toyworld.DESIGN}
    plain = {name: Encoded(tokenizer, name, "validation", args.eval_examples, with_instruction=False) for name in toyworld.DESIGN}
    n_soft = round(args.batch_size * args.soft_fraction)
    started, losses = time.time(), []
    model.train()
    while step < args.steps:
        soft.mix = step >= args.mix_from * args.steps
        ids, mask, labels = sample_batch(streams, distractors, args.batch_size - n_soft, generator)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss * (args.batch_size - n_soft)
        if n_soft:
            names, ids, mask, labels = sample_soft_batch(streams, n_soft, generator)
            loss = loss + soft_loss(model, soft, names, ids, mask, labels, generator).loss * n_soft
        loss = loss / args.batch_size
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *soft.parameters()], 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            report(model, evals, step, sum(losses) / len(losses), started, soft if n_soft else None, plain)
            losses = []
            model.train()
        if step % args.checkpoint_every == 0 and step < args.steps:
            save_checkpoint(ckpt, model, optimizer, step, generator, soft)

    model.eval()
    scores = {name: accuracy(model, Encoded(tokenizer, name, "validation")) for name in toyworld.DESIGN}
    soft_scores = ({name: accuracy(model, Encoded(tokenizer, name, "validation", with_instruction=False), soft)
                    for name in toyworld.DESIGN}
                   if n_soft else {})
    meta = {"shape": args.shape, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
            "seed": args.seed, "threads": args.threads, "soft_fraction": args.soft_fraction,
            "code_noise": args.code_noise, "code_lr": args.code_lr, "mix_from": args.mix_from, "torch": torch.__version__,
            "dev_accuracy_with_instruction": scores, "dev_accuracy_with_soft_instruction": soft_scores}
    digest = write_model(args.out, model, tokenizer, meta)
    ckpt.unlink(missing_ok=True)
    print(f"wrote {args.out} (model.safetensors sha256 {digest})", flush=True)


if __name__ == "__main__":
    main()
