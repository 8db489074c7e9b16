"""`spot`: SPoT-style retrieval (Vu et al. 2022) — the per-task source prompt most similar to the
target's task embedding starts the target prompt and is its prior mean (`methods.retrieve`);
`spot-average-K`, SPoT's top-k weighted average: the similarity-weighted average of the K most similar;
`spot-best-of-K` and `spot-oracle`, tuned from several and the best on dev kept; and `spot-mixture-K`,
SPoT's top-k multi-task mixture: one prompt source-trained on the K most similar sources' data with
the target's, then tuned."""

import hashlib
import json

import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import CONFIGURED, TASK_PROMPTS_DIR, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, resolve_init
from bmtpt_cli.methods.retrieve import RETRIEVE_PREFIX, choose_source, read_sources, task_embedding
from bmtpt_cli.artifacts import file_sha256
from bmtpt_cli.source.svgd import SourceConfig, train_source


def start(request: StartRequest) -> TargetInit:
    """The retrieved prompt of the directory `request.source`, the target's embedding learnt on
    `request.target`'s examples."""
    return resolve_init(RETRIEVE_PREFIX + request.source, request.runner, prompt_length=request.prompt_length,
                        seed=request.seed, required_length=request.required_length, target=request.target,
                        vocab_top_k=request.vocab_top_k, progress=request.progress)


METHOD = TransferMethod(
    name="spot", summary="the per-task source prompt nearest to the target's task embedding (SPoT-style retrieval)",
    source=TASK_PROMPTS_DIR, prior=CONFIGURED, start=start, flag="--source-prompts",
    make_source="a directory of per-task prompts (`bmtpt source --per-task`)", retrieves=True,
)


SOURCE_DIRECTORY = "a directory of per-task prompts (`bmtpt source --per-task`)"


def similarity_weights(similarities: list[float]) -> list[float]:
    """Weights ∝ similarity, negative similarities counted as 0, summing to 1 (equal weights when none is
    positive): SPoT's top-k weighted average."""
    clipped = [max(0.0, value) for value in similarities]
    total = sum(clipped)
    return [value / total for value in clipped] if total > 0 else [1.0 / len(clipped)] * len(clipped)


def ranked_retrieval(request: StartRequest):
    """The target's task embedding against every per-task prompt of `request.source` (the target's own left
    out): `(retrieval, sources, tasks ranked by similarity, ties by name order)`."""
    spec, target = RETRIEVE_PREFIX + request.source, request.target
    sources = read_sources(spec, d_model=request.runner.d_model, prompt_length=request.required_length)
    lengths = {source.prompt.shape[0] for source in sources.values()}
    if len(lengths) > 1:
        raise BmtptError(f"'{request.source}' holds prompts of lengths {sorted(lengths)}: make them with one "
                         "bmtpt source --per-task run")
    if not target.examples:
        raise BmtptError(f"task {target.task} has no training examples to compute its task embedding from; check its data")
    embedding = task_embedding(request.runner, target, length=lengths.pop(), seed=request.seed,
                               vocab_top_k=request.vocab_top_k, progress=request.progress)
    found = choose_source(embedding, sources, target.task, target.measure)
    order = list(found.similarities)
    ranked = sorted(found.similarities, key=lambda task: (-found.similarities[task], order.index(task)))
    return found, sources, ranked


def start_at_average(count: int):
    """`start` of `spot-average-K`: the target's task embedding picks the K source prompts most similar to it
    (the target's own left out; ties by name); their similarity-weighted average is the init and the prior mean."""

    def start(request: StartRequest) -> TargetInit:
        found, sources, ranked = ranked_retrieval(request)
        ranked = ranked[:count]
        weights = similarity_weights([found.similarities[task] for task in ranked])
        prompt = sum(weight * sources[task].prompt.to(torch.float64) for weight, task in zip(weights, ranked)).to(torch.float32)
        details = found.details(request.source, request.target, request.seed) | {
            "method": "retrieve-average", "top": count, "chosen": ranked,
            "weights": dict(zip(ranked, weights)), "chosen_files": [sources[task].path.name for task in ranked],
        }
        details.pop("chosen_file", None)
        digest = hashlib.sha256("".join(file_sha256(sources[task].path) for task in ranked).encode()).hexdigest()
        model = sources[ranked[0]].metadata.get("bmtpt.model")
        return TargetInit(prompt, prompt.clone(), RETRIEVE_PREFIX + request.source, digest, model, details)

    return start


def candidates_of_top(count: int | None):
    """`candidates` of `spot-best-of-K` (`count` = K) and `spot-oracle` (None: every source): one start per
    source prompt among the K nearest to the target's task embedding, in rank order, each the init and prior mean."""

    def candidates(request: StartRequest) -> list[TargetInit]:
        found, sources, ranked = ranked_retrieval(request)
        chosen = ranked if count is None else ranked[:count]
        record = found.details(request.source, request.target, request.seed)
        starts = []
        for rank, task in enumerate(chosen, 1):
            source = sources[task]
            details = record | {"method": "retrieve-candidate", "chosen": task, "chosen_file": source.path.name,
                                "rank": rank, "of": len(chosen)}
            starts.append(TargetInit(source.prompt, source.prompt, RETRIEVE_PREFIX + request.source,
                                     file_sha256(source.path), source.metadata.get("bmtpt.model"), details))
        return starts

    return candidates


def first_candidate(candidates):
    """`start` of a candidates method where one start is asked for: its first (the nearest source prompt)."""
    return lambda request: candidates(request)[0]


def average(count: int) -> TransferMethod:
    """`spot-average-K` (K ≥ 1): SPoT's top-k weighted average of the retrieved source prompts."""
    if count < 1:
        raise BmtptError(f"method spot-average-{count}: spot-average-K averages the K most similar source prompts, so K "
                         "is 1 or more (e.g. spot-average-3)")
    return TransferMethod(
        name=f"spot-average-{count}",
        summary=f"the similarity-weighted average of the {count} per-task source prompts nearest to the target's task embedding",
        source=TASK_PROMPTS_DIR, prior=CONFIGURED, start=start_at_average(count), flag="--source-prompts",
        make_source=SOURCE_DIRECTORY, retrieves=True, details={"top": count},
    )


def best_of(count: int) -> TransferMethod:
    """`spot-best-of-K` (K ≥ 1): tune from each of the K retrieved source prompts, keep the best on dev (SPoT)."""
    if count < 1:
        raise BmtptError(f"method spot-best-of-{count}: spot-best-of-K tunes from the K most similar source prompts, so K "
                         "is 1 or more (e.g. spot-best-of-3)")
    candidates = candidates_of_top(count)
    return TransferMethod(
        name=f"spot-best-of-{count}",
        summary=f"tuned from each of the {count} per-task source prompts nearest to the target's task embedding, the best on dev kept",
        source=TASK_PROMPTS_DIR, prior=CONFIGURED, start=first_candidate(candidates), flag="--source-prompts",
        make_source=SOURCE_DIRECTORY, retrieves=True, candidates=candidates, details={"top": count},
    )


_ORACLE_CANDIDATES = candidates_of_top(None)
ORACLE = TransferMethod(
    name="spot-oracle", summary="tuned from every per-task source prompt, the best on dev kept (SPoT's oracle, brute force)",
    source=TASK_PROMPTS_DIR, prior=CONFIGURED, start=first_candidate(_ORACLE_CANDIDATES), flag="--source-prompts",
    make_source=SOURCE_DIRECTORY, retrieves=True, candidates=_ORACLE_CANDIDATES,
)
"""SPoT's oracle: every source prompt tried, the one whose tuned prompt scores best on dev kept (the
target's own prompt is never a candidate)."""


# ----------------------------------------------------------------------------- top-k multi-task mixture
def mixture_config(source_fingerprint: dict, seed: int, where) -> SourceConfig:
    """The source recipe of a mixture prompt: the one the retrieved per-task prompts were trained with
    (their recorded fingerprint: steps, learning rate, warm-up, examples per task, ...), one particle,
    every task in every step, and the cell's `seed` (its vocabulary draw and batches)."""
    names = [f.name for f in SourceConfig.__dataclass_fields__.values() if f.name not in ("checkpoint_every", "seed")]
    missing = [name for name in names if name not in source_fingerprint]
    if missing:
        raise BmtptError(f"'{where}' does not record the source settings it was trained with ({', '.join(missing)}): "
                         "re-create the directory with bmtpt source --per-task")
    values = {name: source_fingerprint[name] for name in names}
    return SourceConfig(**values | {"particles": 1, "sample_tasks": None, "damping": None, "seed": seed,
                                    "checkpoint_every": int(values["steps"])})


def start_at_mixture(count: int):
    """`start` of `spot-mixture-K`: the target's task embedding picks the K source tasks most similar to it
    (the target's own left out; ties by name); one prompt is source-trained (`train_source`, one particle) on
    those tasks' training data together with the target's examples, with the per-task prompts' own recipe and
    the run's seed; it is the init and the prior mean."""

    def start(request: StartRequest) -> TargetInit:
        if request.load_examples is None:
            raise BmtptError(f"method spot-mixture-{count} trains on its sources' data, which this command does not read: "
                             "run it with bmtpt fewshot or bmtpt adapt")
        found, sources, ranked = ranked_retrieval(request)
        ranked = ranked[:count]
        first = sources[ranked[0]]
        fingerprint = json.loads(first.metadata.get("bmtpt.fingerprint") or "{}")
        config = mixture_config(fingerprint, request.seed, first.path)
        examples = request.load_examples(ranked)
        target = request.target
        mixture = {task: examples[task] for task in ranked} | {target.task: list(target.examples)}
        request.progress.note(f"spot-mixture-{count}: training one prompt on {', '.join(mixture)} "
                              f"({config.steps} steps, {config.examples_per_task} examples per task and step)")
        (prompt,) = train_source(request.runner, mixture, config)
        details = found.details(request.source, target, request.seed) | {
            "method": "retrieve-mixture", "top": count, "chosen": ranked,
            "chosen_files": [sources[task].path.name for task in ranked],
            "mixture": {"tasks": list(mixture), "steps": config.steps, "lr": config.lr,
                        "examples_per_task": config.examples_per_task, "seed": request.seed,
                        "target_examples": len(target.examples)},
        }
        details.pop("chosen_file", None)
        digest = hashlib.sha256("".join(file_sha256(sources[task].path) for task in ranked).encode()).hexdigest()
        return TargetInit(prompt, prompt.clone(), RETRIEVE_PREFIX + request.source, digest,
                          first.metadata.get("bmtpt.model"), details)

    return start


def mixture(count: int) -> TransferMethod:
    """`spot-mixture-K` (K ≥ 1): SPoT's top-k multi-task mixture — a prompt source-trained on the K retrieved
    sources' data mixed with the target's, then tuned on the target."""
    if count < 1:
        raise BmtptError(f"method spot-mixture-{count}: spot-mixture-K trains on the K most similar sources' data, so K "
                         "is 1 or more (e.g. spot-mixture-3)")
    return TransferMethod(
        name=f"spot-mixture-{count}",
        summary=f"one prompt trained on the data of the {count} source tasks nearest to the target's task embedding "
                "mixed with the target's, then tuned",
        source=TASK_PROMPTS_DIR, prior=CONFIGURED, start=start_at_mixture(count), flag="--source-prompts",
        make_source=SOURCE_DIRECTORY, retrieves=True, details={"top": count},
    )
