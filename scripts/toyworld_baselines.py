"""The toy world's reference scores on each target's test split (docs/toyworld.md, property 1).

    .venv/bin/python scripts/toyworld_baselines.py [--model toy] [--tasks toy_tool_yes,...] [--seeds 0,1,2]
    .venv/bin/python scripts/toyworld_baselines.py --model toy3 --world toyworld3 --seeds 0-19

Per task, rank scoring of the label words with the frozen model (inputs taskless, as in the toy preset):
- shortcut: the best rule that answers with another attribute of the scene (0.5 expected);
- no prompt: the input alone;
- random prompt: l = 8 vocabulary embeddings drawn as `adapt --init random` draws them, mean ± std [min, max] over seeds;
- instruction: the task's instruction as text in the prompt's place (for a target: never seen in pretraining;
  the third world has no instructions as text, so its column is left empty).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmtpt_cli.data import toyworld, toyworld3  # noqa: E402
from bmtpt_cli.data.registry import TASKS  # noqa: E402
from bmtpt_cli.scoring.score import score_task  # noqa: E402
from bmtpt_cli.runner.model import load_frozen_t5  # noqa: E402
from bmtpt_cli.runner.prompts import sample_vocab_prompts  # noqa: E402
from bmtpt_cli.runner.runner import FrozenT5Runner  # noqa: E402


def shortcut(design, examples) -> float:
    """Accuracy of the best rule 'answer with another attribute' (either polarity) on these examples."""
    best = 0.0
    for other in toyworld.ATTRIBUTES:
        if other != design.operation:
            agree = sum(toyworld.scene_attributes(e.source.partition(": ")[2])[other] == bool(e.label) for e in examples)
            best = max(best, agree / len(examples), 1 - agree / len(examples))
    return best


def _seed_range(part: str) -> range:
    """'3' → 3; '0-19' → 0..19."""
    low, _, high = part.partition("-")
    return range(int(low), int(high or low) + 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--world", choices=("toyworld", "toyworld3"), default="toyworld",
                        help="whose targets --tasks defaults to")
    parser.add_argument("--tasks", default=None, help="default: the world's targets")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--prompt-length", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    model, tokenizer = load_frozen_t5(args.model)
    runner = FrozenT5Runner(model, tokenizer, max_source_length=256, max_target_length=4)
    embed = model.get_input_embeddings()
    seeds = [int(s) for part in args.seeds.split(",") for s in _seed_range(part)]
    print("| task | role | shortcut | no prompt | random prompt | instruction as text |")
    print("|---|---|---|---|---|---|")
    world = toyworld3 if args.world == "toyworld3" else toyworld
    for name in (args.tasks or ",".join(world.TARGET_NAMES)).split(","):
        task, design = TASKS[name], world.DESIGN[name]
        examples = task.examples("test", taskless=True)
        none = score_task(runner, torch.zeros(0, runner.d_model), task, examples).value
        randoms = []
        for seed in seeds:
            prompt = sample_vocab_prompts(runner.vocab_embeddings.detach().cpu(), count=1, length=args.prompt_length,
                                          candidate_ids=runner.vocab_candidate_ids(5000),
                                          generator=torch.Generator().manual_seed(seed))[0]
            randoms.append(score_task(runner, prompt, task, examples).value)
        instructed = ""
        if hasattr(design, "instruction"):
            ids = torch.tensor(tokenizer(design.instruction, add_special_tokens=False).input_ids)
            instructed = f"{score_task(runner, embed(ids).detach(), task, examples).value:.3f}"
        spread = torch.tensor(randoms)
        print(f"| {name} | {design.role} | {shortcut(design, examples):.3f} | {none:.3f} | "
              f"{spread.mean():.3f} ± {spread.std():.3f} [{spread.min():.3f}, {spread.max():.3f}] | {instructed} |", flush=True)


if __name__ == "__main__":
    main()
