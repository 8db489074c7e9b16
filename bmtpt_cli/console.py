"""Two rich consoles: results go to stdout, progress, logs and errors to stderr; and what
third-party libraries may print there."""

import os
import sys
import warnings

from rich.console import Console

console = Console()
err_console = Console(stderr=True)

PROGRESS_EVERY = 30.0
"""Seconds between plain progress lines when stderr is not a terminal (`--progress-every`)."""

QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # the tokenizer's "Token indices sequence length is longer than …" and other warnings
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bar follows the hub's switch, downloads too
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # `datasets` map/download bars
}
"""What silences the third-party bars and known warnings, as each library reads it at import."""
_set_here: set[str] = set()


def configure_output(*, verbose: bool, progress_every: float = PROGRESS_EVERY) -> None:
    """Set the progress period, and silence third-party loading bars and known warnings unless `verbose`.

    Silencing sets the libraries' own switches (`QUIET_ENVIRONMENT`, for a library not imported yet)
    and calls their APIs (for one already imported); a variable the user set is left as it is.
    `verbose` undoes what an earlier call in this process did, so their defaults apply again.
    """
    global PROGRESS_EVERY
    PROGRESS_EVERY = progress_every
    if verbose:
        for name in _set_here:
            os.environ.pop(name, None)
        _set_here.clear()
    else:
        for name, value in QUIET_ENVIRONMENT.items():
            if name not in os.environ:
                os.environ[name] = value
                _set_here.add(name)
    quiet = not verbose
    with warnings.catch_warnings():  # the hub warns when its variable, read at import, keeps the bars off
        warnings.simplefilter("ignore")
        if "huggingface_hub" in sys.modules:
            from huggingface_hub import utils as hub

            hub.disable_progress_bars() if quiet else hub.enable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar() if quiet else hf_logging.enable_progress_bar()
            level = os.environ.get("TRANSFORMERS_VERBOSITY", "warning")  # ours ("error"), the user's, or the default
            hf_logging.set_verbosity(hf_logging.log_levels.get(level, hf_logging.WARNING))
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars() if quiet else datasets.enable_progress_bars()
        datasets.logging.set_verbosity_error() if quiet else datasets.logging.set_verbosity_warning()
