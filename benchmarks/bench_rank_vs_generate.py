"""Benchmark 4: evaluating a classification task by rank scoring vs greedy generation.

`bmtpt_cli.scoring.score.predict(runner, prompt, examples, candidates=label words, decode=...)`
with `decode="rank"` (log-likelihood of every label word, batched) and `decode="generate"` (greedy
decoding, string output) on the demo_nli test split, one soft prompt drawn from the vocabulary
embeddings. Timed interleaved after warm-up; time ratio = median over rounds of generate ÷ rank.
Agreement: on the examples whose generated string is a valid label, the fraction where both modes
predict the same label. The model has random weights, so few generations are valid labels.
"""

from __future__ import annotations

import time

import harness
import workloads
from harness import (
    Machine, Table, fmt_pct, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range,
)
from workloads import build_runner

NAME = "04_rank_vs_generate"
GOAL = 2.0


class ModuleTimer:
    """Wall time spent inside the encoder, the decoder stack and the LM head (forward hooks)."""

    PARTS = ("encoder", "decoder", "lm_head")

    def __init__(self, model):
        self.totals = {k: 0.0 for k in self.PARTS + ("cross_kv",)}
        self.calls = {k: 0 for k in self.PARTS + ("cross_kv",)}
        self._starts: dict[str, float] = {}
        self._handles = []
        modules = {part: getattr(model, part) for part in self.PARTS}
        for name, module in model.decoder.named_modules():  # inside the decoder stack's time
            if name.endswith(("EncDecAttention.k", "EncDecAttention.v")):
                modules[f"cross_kv:{name}"] = module
        for part, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(part)))
            self._handles.append(module.register_forward_hook(self._post(part)))

    def _pre(self, part):
        def hook(module, args):
            self._starts[part] = time.perf_counter()
        return hook

    def _post(self, part):
        def hook(module, args, output):
            key = part.split(":")[0]
            self.totals[key] += time.perf_counter() - self._starts.pop(part)
            self.calls[key] += 1
        return hook

    def remove(self):
        for handle in self._handles:
            handle.remove()


def breakdown(model, fn) -> dict:
    timer = ModuleTimer(model)
    try:
        start = time.perf_counter()
        fn()
        total = time.perf_counter() - start
    finally:
        timer.remove()
    return {"total": total, **{k: timer.totals[k] for k in timer.PARTS}, "cross_kv": timer.totals["cross_kv"],
            "other": total - sum(timer.totals[k] for k in timer.PARTS), "calls": dict(timer.calls)}


def run_case(model: str, examples, task, prompt_length: int, warmup: int, repeats: int):
    from bmtpt_cli.scoring.score import predict

    runner = build_runner(model)
    prompt = workloads.sample_particles(runner, 1, prompt_length)[0]  # (l, d)
    candidates = task.verbalisers()

    def rank():
        return predict(runner, prompt, examples, candidates=candidates, decode="rank")

    def generate():
        return predict(runner, prompt, examples, candidates=candidates, decode="generate")

    timings = measure_interleaved({"rank": rank, "generate": generate},
                                  warmup=warmup, repeats=repeats,
                                  on_round=None if model == "tiny" else lambda r: print(f"  round {r + 1}", flush=True))
    ranked, generated = rank(), generate()
    valid = [i for i, g in enumerate(generated) if g in candidates]
    agree = sum(ranked[i] == generated[i] for i in valid)
    gold = [e.target for e in examples]
    result = {
        "rank": timings["rank"], "generate": timings["generate"],
        "speedup": paired_ratio(timings["generate"], timings["rank"]),
        "range": paired_ratio_range(timings["generate"], timings["rank"]),
        "valid": len(valid), "agree": agree, "n": len(examples),
        "rank_acc": sum(p == g for p, g in zip(ranked, gold)) / len(gold),
        "gen_acc": sum(p == g for p, g in zip(generated, gold)) / len(gold),
        "sample_generations": generated[:5],
        "max_new_tokens": max(len(runner.tokenizer(w).input_ids) for w in candidates),
    }
    result["breakdown"] = {"rank": breakdown(runner.model, rank), "generate": breakdown(runner.model, generate)}
    return result, {}, (rank, generate)


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--tiny-repeats", type=int, default=None, help="repeats with the tiny model (default 10)")
    parser.add_argument("--examples", type=int, default=64,
                        help="demo_nli test examples, tiny model (default 64; --quick: at most 32)")
    parser.add_argument("--small-examples", type=int, default=16,
                        help="examples at the t5-small shape (default 16; 0 skips it)")
    args = harness.finish_args(parser.parse_args())
    tiny_repeats = args.tiny_repeats or (3 if args.quick else 10)
    small_examples = min(args.small_examples, 8) if args.quick else args.small_examples
    tiny_examples = min(args.examples, 32) if args.quick else args.examples
    started = time.perf_counter()
    machine = Machine.detect()

    from bmtpt_cli.data.registry import get_task

    task = get_task("demo_nli")
    all_examples = task.examples("test")
    cases = [("tiny", 8, all_examples[:tiny_examples], max(2, args.warmup), tiny_repeats)]
    if small_examples:
        cases.append(("t5-small", 100, all_examples[:small_examples], args.warmup, args.repeats))

    table = Table(
        f"demo_nli test ({', '.join(task.verbalisers())}): `predict(..., decode=\"rank\")` vs `decode=\"generate\"`, "
        "one vocabulary-sampled prompt, random-weight model, ByT5 byte tokenizer",
        ["model (l)", "examples", "rounds", "rank", "generate", "generate ÷ rank (median of per-round ratios)",
         "per-round range", "valid generations", "agreement on valid", "accuracy rank / generate"],
    )
    split = Table("Where the time goes (one extra call of each mode with forward hooks on the encoder, the decoder "
                  "stack and the LM head; 'other' = tokenising, CE, generate's loop logic)",
                  ["model", "mode", "total", "encoder", "decoder stack (calls)", "of which cross-attn K/V projections",
                   "lm_head", "other"])
    data, details, speedups = {}, [], {}
    for model, l, examples, warmup, repeats in cases:
        print(f"[{model}, l={l}, {len(examples)} examples] warm-up {warmup}, repeats {repeats}", flush=True)
        res, _, (rank_fn, gen_fn) = run_case(model, examples, task, l, warmup, repeats)
        speedups[model] = res["speedup"]
        agreement = f"{res['agree']}/{res['valid']}" + (f" ({fmt_pct(res['agree'] / res['valid'], 0)})"
                                                        if res["valid"] else " (undefined)")
        table.add(f"{model} (l={l})", res["n"], repeats, fmt_time(res["rank"].median), fmt_time(res["generate"].median),
                  f"**{fmt_ratio(res['speedup'], 2)}**", f"{res['range'][0]:.2f}–{res['range'][1]:.2f}",
                  f"{res['valid']}/{res['n']}", agreement,
                  f"{fmt_pct(res['rank_acc'], 0)} / {fmt_pct(res['gen_acc'], 0)}")
        data[model] = res
        for mode in ("rank", "generate"):
            b = res["breakdown"][mode]
            pct = lambda k: f"{fmt_time(b[k])} ({fmt_pct(b[k] / b['total'], 0)})"  # noqa: E731
            split.add(model, mode, fmt_time(b["total"]), pct("encoder"),
                      f"{fmt_time(b['decoder'])} ({fmt_pct(b['decoder'] / b['total'], 0)}; {b['calls']['decoder']} calls)",
                      pct("cross_kv"), pct("lm_head"), pct("other"))
        if res["speedup"] < GOAL and model == "tiny":
            details.append((f"cProfile, rank at {model} (cumulative; note runner.encode)",
                            harness.cprofile_top(rank_fn, row_limit=25, sort="cumulative")))
            details.append((f"torch.profiler, rank at {model}", harness.profile_top_ops(rank_fn)))
            details.append((f"torch.profiler, generate at {model}", harness.profile_top_ops(gen_fn)))

    verdicts = [f"{m} {s:.2f}× ({'met' if s >= GOAL else 'MISSED'})" for m, s in speedups.items()]
    met = all(s >= GOAL for s in speedups.values())
    goal = f"rank ≥ {GOAL:.0f}× faster than generate: {'; '.join(verdicts)} → {'MET' if met else 'NOT MET at every shape'}."
    sample = data["tiny"]["sample_generations"]
    notes = [
        f"Generation decodes at most {data['tiny']['max_new_tokens']} new tokens (the longest label word in ByT5 "
        f"bytes + </s>, as `predict` sets it) in batches of 32; rank scores all 3 label words per example "
        "(`runner.candidate_log_likelihoods`: each example encoded once, each distinct label word tokenised once, all "
        "(example, candidate) rows through the decoder in one pass).",
        f"With random weights the greedy outputs are byte noise (first five: {sample!r}), so the agreement is "
        "measured on very few or no examples; it says nothing about a trained prompt. Accuracies are at chance.",
        "Why rank cannot be 2× faster here: both modes run the encoder once per example (the largest part, see "
        "the second table); rank then runs the decoder once over B·C (example, candidate) rows of t label tokens "
        "— C = 3 times the decoder positions greedy decoding visits (t incremental steps with a KV cache) — and "
        "recomputes the cross-attention keys/values of each example's encoder output for each of its C rows "
        "(column 'cross-attn K/V'), where generation computes them once. Generation's per-step overhead is "
        "small on a CPU, and with random weights it never stops early (no </s>), its worst case.",
        "The t5-small row uses the t5-small shape (d=512, 6+6 layers, vocab 32,128) with ByT5 byte ids, so its "
        "sources are longer in tokens than SentencePiece would make them.",
    ]
    harness.write_report(
        NAME, "4. Rank scoring vs greedy generation for classification",
        what="wall time of scoring a classification task's test examples with rank scoring (one batched "
             "log-likelihood pass over the label words) vs greedy generation + string match, and how often "
             "the two agree where generation yields a valid label.",
        machine=machine, tables=[table, split], goal=goal, notes=notes, details=details, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
