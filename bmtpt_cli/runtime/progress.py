"""How the core reports progress without knowing about the terminal.

Core functions take a `Progress` and call `status`, `bar` and `note` on it; the base class does
nothing (library use, tests, data-parallel workers), and the command layer passes one that draws
rich spinners and progress bars on stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Update = Callable[..., None]
"""`update(completed, info="")`: move a bar to `completed` steps with a line of figures beside it."""


class Progress:
    """Silent progress: every method does nothing. Subclass it to show something."""

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:  # noqa: ARG002 — silent
        """A spinner with `message` while the block runs (e.g. loading a model)."""
        yield

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Update]:  # noqa: ARG002 — silent
        """A progress bar of `total` steps while the block runs; yields its `update` function."""
        yield lambda completed, info="": None

    def note(self, message: str) -> None:
        """A one-line warning or note for the user (stderr)."""


SILENT = Progress()


def on_main(progress: Progress, is_main: bool) -> Progress:
    """`progress` on the main process, `SILENT` on the other data-parallel processes."""
    return progress if is_main else SILENT
