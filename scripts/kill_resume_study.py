"""Random SIGKILLs, then --resume: is the finished artifact bit-identical to an uninterrupted run? (issue 27)

For each trial the command runs with a checkpoint every step and is killed (SIGKILL) at a random moment,
then continued (`--resume` when a checkpoint exists, else started again) and killed again with the
same chance until it finishes. The finished tensors are compared with an uninterrupted run's, bit for
bit; every trial prints one JSON line and the end a summary.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/kill_resume_study.py --trials 10 --command source
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/kill_resume_study.py --trials 10 --command adapt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BMTPT = [sys.executable, "-m", "bmtpt_cli"]
COMMANDS = {
    "source": ["source", "--preset", "tiny", "--steps", "12", "--particles", "2", "--warmup-steps", "2",
               "--checkpoint-every", "1"],
    "adapt": ["adapt", "--preset", "tiny", "--init", "random", "--steps", "12", "--eval-every", "4",
              "--warmup-steps", "2", "--checkpoint-every", "1"],
}


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def run(argv: list[str], folder: Path, kill_after: float | None) -> tuple[int, bool, str]:
    """(exit code, killed, last stderr line) of one attempt, SIGKILLed after `kill_after` seconds if still running."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("BMTPT_PRESET", None)
    process = subprocess.Popen([*BMTPT, *argv], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=kill_after)
        lines = stderr.decode(errors="replace").strip().splitlines()
        return process.returncode, False, lines[-1] if lines else ""
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return process.returncode, True, ""


def trial(command: str, folder: Path, rng: random.Random, reference: dict, window: tuple[float, float]) -> dict:
    out = folder / "out.safetensors"
    argv = [*COMMANDS[command], "--out", str(out)]
    kills = attempts = 0
    while True:
        attempts += 1
        checkpoint = Path(f"{out}.ckpt")
        if out.is_file() and not checkpoint.exists():
            break  # killed after the run had finished (artifact written, checkpoint removed)
        resume = ["--resume"] if checkpoint.is_file() else []
        kill_after = rng.uniform(*window) if kills < 5 else None  # at most five kills, then let it finish
        code, killed, last_line = run([*argv, *resume], folder, kill_after)
        if killed:
            kills += 1
            continue
        if code != 0:
            return {"command": command, "kills": kills, "attempts": attempts, "ok": False, "exit": code,
                    "resume": bool(resume), "error": last_line}
        break
    got = tensors(out)
    identical = got.keys() == reference.keys() and all(got[k].equal(reference[k]) for k in reference)
    leftovers = sorted(p.name for p in folder.iterdir() if p.name != out.name and not p.name.endswith(".log.jsonl"))
    return {"command": command, "kills": kills, "attempts": attempts, "ok": True, "identical": identical,
            "leftovers": leftovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--command", choices=sorted(COMMANDS), default="source")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", default="2,9", help="kill after a uniform number of seconds in LOW,HIGH")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    window = tuple(float(x) for x in args.window.split(","))
    with tempfile.TemporaryDirectory() as root:
        base = Path(root) / "reference"
        base.mkdir()
        started = time.perf_counter()
        code, _, _ = run([*COMMANDS[args.command], "--out", str(base / "out.safetensors")], base, None)
        assert code == 0, "the uninterrupted run failed"
        print(f"uninterrupted run: {time.perf_counter() - started:.1f} s", flush=True)
        reference = tensors(base / "out.safetensors")
        rows = []
        for number in range(args.trials):
            folder = Path(root) / f"trial-{number}"
            folder.mkdir()
            rows.append(trial(args.command, folder, rng, reference, window))
            print(json.dumps(rows[-1]), flush=True)
    killed = [r for r in rows if r["kills"]]
    same = sum(1 for r in killed if r.get("identical"))
    print(f"{args.command}: {sum(r['kills'] for r in rows)} SIGKILLs in {len(rows)} trials; "
          f"{same} of {len(killed)} interrupted runs bit-identical to the uninterrupted run; "
          f"{sum(1 for r in rows if not r['ok'])} failed; leftovers: {sorted({x for r in rows for x in r.get('leftovers', [])})}")


if __name__ == "__main__":
    main()
