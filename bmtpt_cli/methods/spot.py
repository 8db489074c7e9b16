"""`spot`: SPoT-style retrieval (Vu et al. 2022) — the per-task source prompt most similar to the
target's task embedding starts the target prompt and is its prior mean (`methods.retrieve`)."""

from bmtpt_cli.methods.base import CONFIGURED, TASK_PROMPTS_DIR, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, resolve_init
from bmtpt_cli.methods.retrieve import RETRIEVE_PREFIX


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
