"""Benchmark 8: bmtpt against what a researcher would otherwise run — a loop of PEFT models, PEFT's generate.

Training: the shipped source step (`workloads.SourceStep`: `source_update` — tokenising, the
particles' forward and backward in the automatic chunk plan, SVGD, AdamW, checks) against the peer,
M separate `peft.get_peft_model(T5, PromptTuningConfig(num_virtual_tokens=l,
num_transformer_submodules=1))` models over the same frozen T5 (an encoder prompt only, as bmtpt),
each doing forward (its own loss on the same B examples) + backward + its own AdamW step, on a token
batch encoded once up front (the peer pays no tokenising). The bare batched forward + backward of
the M·B sequences (`workloads.BarePass`) is timed alongside: the goal is step ÷ min(peer, bare) ≤ 1.
Peak memory of one step against M is measured for both (resident-set growth on the CPU).

Evaluation: N examples of RTE's validation split (read in place from `../shared/data/glue/RTE` when
it is there, else demo_nli's test split), scored with the shipped `score_task` (rank scoring, and
`--decode generate`), against PEFT's `generate` in batches of 32 in the data's order, decoded
greedily for as many tokens as the longest label word (+ EOS), exactly what bmtpt's generation asks.

Every comparison is interleaved (round-robin, rotating order) after warm-up; ratios are medians of
per-round ratios with their range. One intra-op thread by default (`--threads`), as the issue's table.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import torch

import harness
import workloads
from harness import Machine, Table, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range
from workloads import BarePass, SourceStep, StepShape, build_runner

NAME = "08_peer_peft"
SHARED_DATA = harness.ROOT.parent / "shared" / "data"


# ============================================================================ the peer: a loop of PEFT models
def peft_models(model, count: int, prompt_length: int, starts: torch.Tensor | None = None):
    """`count` PEFT prompt-tuning models over the same frozen `model` (encoder prompt of `prompt_length`),
    each with its own prompt (initialised from `starts[j]` when given) and its own AdamW (lr 0.3)."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    out = []
    for j in range(count):
        config = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=prompt_length,
                                    num_transformer_submodules=1)
        peft_model = get_peft_model(model, config)
        weight = peft_model.prompt_encoder.default.embedding.weight  # (l, d)
        if starts is not None:
            with torch.no_grad():
                weight.copy_(starts[j])
        out.append((peft_model, torch.optim.AdamW([weight], lr=0.3, weight_decay=0.0)))
    return out


class PeftLoop:
    """One training step of M separate PEFT models on the same B examples: forward, backward, AdamW each."""

    def __init__(self, step: SourceStep, *, autocast: torch.dtype | None = None):
        self.batch = step.batch  # (B, n) ids, (B, t) labels: encoded once, the peer pays no tokenising
        self.models = peft_models(step.runner.model, step.config.particles, step.config.prompt_length,
                                  step.particles.detach())
        self.autocast = autocast  # the runner's autocast dtype (bf16 on a GPU), so both run the LM alike
        self.device_type = step.batch.input_ids.device.type

    def __call__(self) -> None:
        import contextlib

        for peft_model, optimizer in self.models:
            cast = (torch.autocast(self.device_type, dtype=self.autocast) if self.autocast is not None
                    else contextlib.nullcontext())
            with cast:
                out = peft_model(input_ids=self.batch.input_ids, attention_mask=self.batch.attention_mask,
                                 labels=self.batch.labels)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


# ============================================================================ training
def train_shapes(args) -> list[StepShape]:
    out = []
    if "tiny" in args.shapes:
        out.append(StepShape("tiny", 8, 5, 6, 64, 4))
    if "t5-small" in args.shapes:
        out.append(StepShape("t5-small", 100, 5, 6, 28 if args.quick else args.source_len, 4))
    return out


def run_training(shape: StepShape, args) -> tuple[list, dict]:
    runner = build_runner(shape.model)
    step = SourceStep.for_shape(runner, shape)
    peer, bare = PeftLoop(step), BarePass(step)
    variants = {"bmtpt": step, "peer": peer, "bare": bare}
    if args.one_pass and hasattr(runner, "chunk_sequences"):  # the step as it was: all M·B sequences in one pass
        whole = SourceStep.for_shape(runner, shape)

        def one_pass():
            runner.chunk_sequences = shape.particles * shape.batch
            try:
                return whole()
            finally:
                runner.chunk_sequences = None

        variants["one pass"] = one_pass
    tiny = shape.model == "tiny"
    repeats = (args.tiny_repeats or (8 if args.quick else 30)) if tiny else args.repeats
    warmup = max(3, args.warmup) if tiny else args.warmup
    print(f"[train {shape.label()}] warm-up {warmup}, repeats {repeats}", flush=True)
    timings = measure_interleaved(variants, warmup=warmup, repeats=repeats,
                                  on_round=None if tiny else lambda r: print(f"  round {r + 1}", flush=True))
    s, p, b = timings["bmtpt"], timings["peer"], timings["bare"]
    best = harness.Timing("min(peer, bare)", [min(x, y) for x, y in zip(p.samples, b.samples)])
    rows = []
    others = [("PEFT loop", p), ("bare batched forward+backward", b), ("min(PEFT loop, bare)", best)]
    if "one pass" in timings:
        others.append(("the same step in one pass of M·B (--chunk-sequences M·B: the code before the chunk plan)",
                       timings["one pass"]))
    for label, other in others:
        lo, hi = paired_ratio_range(s, other)
        rows.append([shape.label(), label, repeats, fmt_time(s.median), fmt_time(other.median),
                     f"**{paired_ratio(s, other):.2f}**", f"{lo:.2f}–{hi:.2f}"])
    plan = describe_plan(step)
    data = {"shape": shape.__dict__, "bmtpt": s, "peer": p, "bare": b, "plan": plan,
            "ratio_peer": paired_ratio(s, p), "ratio_bare": paired_ratio(s, b), "ratio_best": paired_ratio(s, best),
            "range_best": paired_ratio_range(s, best)}
    if "one pass" in timings:
        data |= {"one_pass": timings["one pass"], "ratio_one_pass": paired_ratio(s, timings["one pass"]),
                 "range_one_pass": paired_ratio_range(s, timings["one pass"])}
    return rows, data


def describe_plan(step: SourceStep) -> str:
    """The chunk plan the shipped step chose (the runner's, when it has one), for the table."""
    plan_of = getattr(step.runner, "pass_plan", None)
    if plan_of is None:
        return "one pass of M·B (no chunking in this version)"
    return str(plan_of(step.config.particles, step.batch, step.config.prompt_length))


# ============================================================================ memory against M
def memory_against_m(args) -> tuple[Table, dict]:
    """Peak resident-set growth of one step (after a warm-up step) for bmtpt and the PEFT loop, per M."""
    counts = [1, 2] if args.quick else [int(m) for m in args.memory_particles.split(",")]
    shape0 = train_shapes(args)[-1]
    runner = build_runner(shape0.model)
    table = Table(f"Peak memory of one training step against M ({shape0.model}: l = {shape0.prompt_length}, B = "
                  f"{shape0.batch}, n = {shape0.source_len}, t = {shape0.target_len}); resident-set growth over the "
                  "step's start, after one warm-up step, allocator trimmed before", [
                      "M", "bmtpt plan", "bmtpt peak", "PEFT loop peak"])
    data = {}
    for m in counts:
        shape = StepShape(shape0.model, shape0.prompt_length, m, shape0.batch, shape0.source_len, shape0.target_len)
        step = SourceStep.for_shape(runner, shape)
        peer = PeftLoop(step)
        peaks = {}
        for name, fn in (("bmtpt", step), ("peer", peer)):
            fn()  # warm-up
            harness.release_free_memory()
            if not harness.reset_peak_rss():
                peaks[name] = float("nan")
                continue
            start = harness.current_rss_mib()
            fn()
            peaks[name] = harness.peak_rss_mib() - start
        print(f"  M={m}: bmtpt {peaks['bmtpt']:.0f} MiB, PEFT loop {peaks['peer']:.0f} MiB", flush=True)
        table.add(m, describe_plan(step), f"{peaks['bmtpt']:.0f} MiB", f"{peaks['peer']:.0f} MiB")
        data[m] = peaks
        del step, peer
        gc.collect()
    return table, data


# ============================================================================ evaluation
def eval_examples(count: int, data_dir: Path):
    """(task, examples, where they came from): RTE's test split read in place, or demo_nli's test split."""
    from bmtpt_cli.data.registry import get_task

    if (data_dir / "glue" / "RTE").is_dir():
        from bmtpt_cli.data.config import DataConfig
        from bmtpt_cli.settings import build, defaults

        task = get_task("rte")
        config = build(DataConfig, defaults("evaluate"), data_dir=data_dir)
        examples = config.by_task([task], "test")["rte"]
        return task, examples[:count], f"RTE test split (bmtpt's: half the GLUE dev set), first {count}, read in place from ../shared/data"
    task = get_task("demo_nli")
    return task, task.examples("test")[:count], f"demo_nli test split, first {count} (no ../shared/data here)"


def run_evaluation(args) -> tuple[Table, dict]:
    from bmtpt_cli.scoring.score import score_task

    tokenizer_dir = Path(args.data_dir) / "tokenizers" / "t5"
    tokenizer = None
    if tokenizer_dir.is_dir():  # T5's own SentencePiece vocabulary: label words of 1-4 tokens, as a t5 user scores
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    runner = build_runner("t5-small", tokenizer=tokenizer, max_target_length=32)
    tokenizer_name = "T5's SentencePiece tokenizer" if tokenizer is not None else "byte tokenizer (no T5 tokenizer found)"
    task, examples, where = eval_examples(16 if args.quick else args.eval_examples, Path(args.data_dir))
    labels = task.verbalisers("words")
    prompt = workloads.sample_particles(runner, 1, 100)[0]  # (l, d)
    (peft_model, _), = peft_models(runner.model, 1, 100, prompt[None])
    max_new = max(len(runner.tokenizer(w).input_ids) for w in labels)
    sources = [e.source for e in examples]
    lengths = [len(runner.tokenizer(s, max_length=runner.max_source_length, truncation=True).input_ids) for s in sources]

    def rank():
        return score_task(runner, prompt, task, examples, decode="rank")

    def generate():
        return score_task(runner, prompt, task, examples, decode="generate")

    def peer_generate():
        texts = []
        for start in range(0, len(sources), 32):
            enc = runner.tokenizer(sources[start:start + 32], max_length=runner.max_source_length, truncation=True,
                                   padding=True, return_tensors="pt")
            with torch.no_grad():
                out = peft_model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                          max_new_tokens=max_new, do_sample=False, num_beams=1)
            texts += [t.strip() for t in runner.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return texts

    same = generate_agrees(runner, prompt, task, examples, peer_generate())
    variants = {"rank": rank, "generate": generate, "peer": peer_generate}
    if args.one_pass and hasattr(runner, "eval_tokens"):  # rank scoring as it was: every example in one chunk

        def rank_one_pass():
            runner.eval_tokens = 10**9
            try:
                return rank()
            finally:
                runner.eval_tokens = None

        variants["rank one pass"] = rank_one_pass
    repeats = args.eval_repeats or (1 if args.quick else 3)
    print(f"[evaluation: {len(examples)} examples, {where}] repeats {repeats}", flush=True)
    timings = measure_interleaved(variants, warmup=0, repeats=repeats,
                                  on_round=lambda r: print(f"  round {r + 1}", flush=True))
    r, g, p = timings["rank"], timings["generate"], timings["peer"]
    table = Table(f"Evaluation of one prompt on {len(examples)} examples ({where}; {tokenizer_name}: sources of "
                  f"{min(lengths)}–{max(lengths)} tokens, median {statistics.median(lengths):.0f}, + l = 100; label "
                  f"words up to {max_new} tokens with EOS), t5-small shape, {repeats} interleaved rounds",
                  ["bmtpt", "time", "PEFT generate, batches of 32", "ratio bmtpt ÷ peer", "per-round range"])
    rows = [("rank scoring (`score_task`, decode rank)", r), ("greedy generation (`score_task`, decode generate)", g)]
    if "rank one pass" in timings:
        rows.append(("rank scoring with every example in one chunk (the code before the token budget)",
                     timings["rank one pass"]))
    for label, t in rows:
        lo, hi = paired_ratio_range(t, p)
        table.add(label, fmt_time(t.median), fmt_time(p.median), f"**{paired_ratio(t, p):.2f}**", f"{lo:.2f}–{hi:.2f}")
    data = {"examples": len(examples), "where": where, "rank": r, "generate": g, "peer": p,
            "ratio_rank": paired_ratio(r, p), "ratio_generate": paired_ratio(g, p), "generations_agree": same,
            "source_lengths": lengths, "tokenizer": tokenizer_name}
    if "rank one pass" in timings:
        data |= {"rank_one_pass": timings["rank one pass"],
                 "ratio_rank_vs_one_pass": paired_ratio(r, timings["rank one pass"])}
    return table, data


def generate_agrees(runner, prompt, task, examples, peer_texts) -> float:
    """Share of examples where bmtpt's generation and PEFT's give the same text (same model and prompt)."""
    from bmtpt_cli.scoring.score import predict

    ours = predict(runner, prompt, examples, candidates=task.verbalisers("words"), decode="generate")
    return sum(a == b for a, b in zip(ours, peer_texts)) / max(len(ours), 1)


# ============================================================================ report
def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--shapes", default="tiny,t5-small", help="comma-separated: tiny, t5-small")
    parser.add_argument("--source-len", type=int, default=128, help="t5-small source tokens n (default 128)")
    parser.add_argument("--tiny-repeats", type=int, default=None, help="rounds at the tiny shape (default 30)")
    parser.add_argument("--eval-examples", type=int, default=200, help="examples scored (default 200)")
    parser.add_argument("--eval-repeats", type=int, default=None, help="evaluation rounds (default 3)")
    parser.add_argument("--memory-particles", default="1,2,4,8", help="M values of the memory table")
    parser.add_argument("--data-dir", default=str(SHARED_DATA), help="where glue/RTE is read from (default ../shared/data)")
    parser.add_argument("--no-one-pass", dest="one_pass", action="store_false",
                        help="do not also time the step and rank scoring in one pass (the code before the chunk plans)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: train, memory, eval")
    parser.set_defaults(threads=1)
    args = harness.finish_args(parser.parse_args())
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    machine, started = Machine.detect(), time.perf_counter()
    tables, data, goals = [], {}, []

    if "train" not in skip:
        train = Table("One source step (M = 5 particles × B = 6 examples, K = 6 tasks × 1) against a loop of 5 PEFT "
                      "models and against the bare batched forward + backward; interleaved rounds after warm-up",
                      ["shape", "against", "rounds", "bmtpt step", "other", "ratio bmtpt ÷ other (median)", "range"])
        for shape in train_shapes(args):
            rows, d = run_training(shape, args)
            for row in rows:
                train.add(*row)
            data[f"train/{shape.model}"] = d
            goals.append(f"step ÷ min(PEFT loop, bare) at {shape.model} {d['ratio_best']:.2f} "
                         f"({'met' if d['ratio_best'] <= 1.0 else 'NOT met'}; goal ≤ 1.0)")
        tables.append(train)
    if "memory" not in skip:
        table, d = memory_against_m(args)
        tables.append(table)
        data["memory"] = d
    if "eval" not in skip:
        table, d = run_evaluation(args)
        tables.append(table)
        data["eval"] = d
        speedup = 1 / d["ratio_rank"]
        goals.append(f"rank scoring {speedup:.2f}× faster than PEFT generate ({'met' if speedup >= 1.3 else 'NOT met'}; "
                     f"goal ≥ 1.3×); bmtpt generation ÷ PEFT generation {d['ratio_generate']:.2f} "
                     f"({'met' if d['ratio_generate'] <= 1.0 else 'NOT met'}; goal ≤ 1.0)")
    notes = [
        f"Threads: {torch.get_num_threads()} intra-op. The peer's models share one frozen T5 (PEFT's prompt "
        "tuning leaves the base model's modules untouched), each has its own (l, d) prompt and AdamW.",
        "The peer tokenises nothing per step; bmtpt's step tokenises its B examples (`bmtpt.encode`).",
        "Generation: bmtpt and PEFT run the same model and prompt; the share of examples where their texts agree "
        "is in the JSON (`generations_agree`).",
    ]
    harness.write_report(
        NAME, "8. bmtpt against a loop of PEFT models and PEFT generation",
        what="the shipped source step against M separate PEFT prompt-tuning models (and the bare batched pass), peak "
             "step memory against M for both, and evaluation (rank scoring, greedy generation) against PEFT's "
             "generate on the same examples.",
        machine=machine, tables=tables, goal="; ".join(goals) or "n/a", notes=notes, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
