"""`multitask`: vanilla multi-task transfer — the single prompt of a one-particle source run
(`bmtpt source --particles 1`), with the prior toward it as `--prior` says."""

from bmtpt_cli.methods.base import CONFIGURED, ONE_PARTICLE_FILE, TransferMethod
from bmtpt_cli.methods.particles import start_at_mean

METHOD = TransferMethod(
    name="multitask", summary="the one-particle prompt of a multi-task source run (vanilla multi-task transfer)",
    source=ONE_PARTICLE_FILE, prior=CONFIGURED, start=start_at_mean, flag="--multitask",
    make_source="a one-particle file (`bmtpt source --particles 1 --out FILE`)",
)
