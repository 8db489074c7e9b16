"""The methods that start from a source posterior (SPEC §3): `bmtpt` (the particle mean θ̄^S, with
the prior toward it), `bmtpt-noprior` (the same, no prior: the paper's ablation) and `particle-I`
(particle I as the init and the prior mean)."""

from bmtpt_cli.methods.base import ALWAYS, CONFIGURED, NEVER, PARTICLES_FILE, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, resolve_init

POSTERIOR = "a particles file (`bmtpt source`)"


def start_at_mean(request: StartRequest) -> TargetInit:
    """W = the mean of the source file (θ̄^S for particles), which is also the prior mean."""
    return resolve_init(request.source, request.runner, prompt_length=request.prompt_length, seed=request.seed,
                        required_length=request.required_length, init_file=request.init_file)


def start_at_particle(index: int):
    """`start` of `particle-I`: particle `index` of the file is the init and the prior mean."""

    def start(request: StartRequest) -> TargetInit:
        return resolve_init(request.source, request.runner, prompt_length=request.prompt_length, seed=request.seed,
                            required_length=request.required_length, init_file=request.init_file, particle=index)

    return start


BMTPT = TransferMethod(
    name="bmtpt", summary="the particle mean of a source posterior, with the Gaussian prior toward it (the paper's method)",
    source=PARTICLES_FILE, prior=ALWAYS, start=start_at_mean, flag="--particles", make_source=POSTERIOR,
)
BMTPT_NOPRIOR = TransferMethod(
    name="bmtpt-noprior", summary="the particle mean of a source posterior, no prior (the paper's ablation)",
    source=PARTICLES_FILE, prior=NEVER, start=start_at_mean, flag="--particles", make_source=POSTERIOR,
)


def particle(index: int) -> TransferMethod:
    """`particle-I`: particle I of a source posterior as the init and the prior mean."""
    return TransferMethod(
        name=f"particle-{index}", summary=f"particle {index} of a source posterior, the prior toward it as --prior says",
        source=PARTICLES_FILE, prior=CONFIGURED, start=start_at_particle(index), flag="--particles",
        make_source=POSTERIOR, details={"particle": index},
    )
