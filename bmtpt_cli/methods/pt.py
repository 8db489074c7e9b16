"""`pt`: vanilla prompt tuning (Lester et al. 2021) — a random vocabulary init drawn from the seed, no prior."""

from bmtpt_cli.methods.base import NO_PRIOR, NO_SOURCE, StartRequest, TransferMethod
from bmtpt_cli.methods.init import RANDOM_INIT, TargetInit, resolve_init


def start(request: StartRequest) -> TargetInit:
    """l embeddings of tokens drawn from the `vocab_top_k` most frequent, seeded by the run's seed."""
    return resolve_init(RANDOM_INIT, request.runner, prompt_length=request.prompt_length, seed=request.seed,
                        vocab_top_k=request.vocab_top_k)


METHOD = TransferMethod(
    name="pt", summary="vanilla prompt tuning: a random vocabulary init drawn from the seed, no prior",
    source=NO_SOURCE, prior=NO_PRIOR, start=start,
)
