"""Benchmark 4b: rank scoring vs greedy generation with T5's own SentencePiece tokenizer.

Benchmark 4 uses the byte tokenizer, where "contradiction" is 14 tokens; with T5's SentencePiece
vocabulary a label word is 1-4 tokens, which is what a t5-base user scores. Random weights make
greedy decoding stop at arbitrary points, so generation is forced to write exactly as many tokens
as the longest label plus end-of-sequence (`min_new_tokens = max_new_tokens`): the cost of a trained
prompt that writes a label. Needs `../shared/data/tokenizers/t5` (skips otherwise); t5-small and
t5-base shapes with random weights.
"""

from __future__ import annotations

import time

import torch

import harness
from harness import Machine, Table, fmt_time
from workloads import MODEL_SHAPES, build_runner

NAME = "04b_rank_vs_generate_t5_tokenizer"
TOKENIZER = harness.ROOT.parent / "shared" / "data" / "tokenizers" / "t5"
SHAPES = ["t5-small", "t5-base"]  # workloads.MODEL_SHAPES, random weights (seed 0)
assert set(SHAPES) <= set(MODEL_SHAPES)


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--examples", type=int, default=32)
    args = harness.finish_args(parser.parse_args())
    if not TOKENIZER.is_dir():
        print(f"skipped: {TOKENIZER} is not here")
        return
    from transformers import AutoTokenizer

    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.scoring.score import rank

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    task = get_task("demo_nli")
    examples = task.examples("test")[: args.examples]
    label_tokens = max(len(tokenizer(w).input_ids) for w in task.label_words)  # label + </s>
    machine, started = Machine.detect(), time.perf_counter()
    table = Table(
        f"demo_nli test, {len(examples)} examples, label words {list(task.label_words)} = at most {label_tokens} "
        f"T5 tokens with </s>; l = 100; medians of {args.repeats} interleaved rounds after warm-up",
        ["shape", "rank", "generate (forced to the label length)", "generate ÷ rank"],
    )
    shapes = ["t5-small"] if args.quick else SHAPES
    ratios = {}
    for shape in shapes:
        runner = build_runner(shape, tokenizer=tokenizer)
        prompt = torch.randn(100, runner.d_model, generator=torch.Generator().manual_seed(0))

        def by_rank():
            return rank(runner, prompt, examples, task.label_words)

        def by_generation():
            out = []
            for start in range(0, len(examples), 32):
                chunk = [e.source for e in examples[start : start + 32]]
                encoded = runner.encode(chunk)
                embeds, mask = runner.prompted_inputs(prompt.expand(len(chunk), -1, -1), encoded.input_ids, encoded.attention_mask)
                with torch.no_grad():
                    ids = runner.model.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, num_beams=1,
                                                max_new_tokens=label_tokens, min_new_tokens=label_tokens)
                out.extend(runner.tokenizer.batch_decode(ids, skip_special_tokens=True))
            return out

        timings = harness.measure_interleaved({"rank": by_rank, "generate": by_generation}, warmup=1, repeats=args.repeats)
        ratios[shape] = harness.paired_ratio(timings["generate"], timings["rank"])
        table.add(shape, fmt_time(timings["rank"].median), fmt_time(timings["generate"].median), f"**{ratios[shape]:.2f}×**")
    met = all(r >= 2 for r in ratios.values())
    harness.write_report(
        NAME,
        "4b. Rank scoring vs generation with T5's SentencePiece tokenizer",
        what=__doc__.split("\n\n")[1].replace("\n", " "),
        machine=machine,
        tables=[table],
        goal=f"rank ≥ 2× faster than generate: " + "; ".join(f"{s} {r:.2f}×" for s, r in ratios.items())
        + (" → MET" if met else " → NOT MET"),
        data={"ratios": ratios, "label_tokens": label_tokens},
        quick=args.quick,
        elapsed_s=time.perf_counter() - started,
        write=not args.no_write,
        out=args.out,
    )


if __name__ == "__main__":
    main()
