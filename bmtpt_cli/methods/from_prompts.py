"""`from-prompts`: start from an adapted prompts file — W is the mean of its tasks' composed
prompts, which is also the prior mean (continued adaptation; `transfer-matrix --tune` from a source
task's prompt)."""

from bmtpt_cli.methods.base import CONFIGURED, PROMPTS_FILE, TransferMethod
from bmtpt_cli.methods.particles import start_at_mean

METHOD = TransferMethod(
    name="from-prompts", summary="the mean of a prompts file's task prompts, the prior toward it as --prior says",
    source=PROMPTS_FILE, prior=CONFIGURED, start=start_at_mean, make_source="a prompts file (`bmtpt adapt`)",
)
