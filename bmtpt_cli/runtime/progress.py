"""How the core reports progress without knowing about the terminal.

Core functions take a `Progress` and call `status`, `bar` and `note` on it; the base class does
nothing (library use, tests, data-parallel workers), and the command layer passes one that draws
rich spinners and progress bars on stderr, or, when stderr is not a terminal, `PlainProgress`'s
plain lines every N seconds (`--progress-every`).
"""

from __future__ import annotations

import contextlib
import threading
import time
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


class PlainProgress(Progress):
    """Progress for a log file or a pipe (a batch job): plain lines, no redrawing.

    While a status or bar is open, a line every `every` seconds says where it stands (a bar: steps
    done of its total, the share, the time taken and left, its latest figures); a bar that ends
    prints its last line. `write(line)` puts one line out (the command layer: stderr). A background
    thread keeps time, so a line comes even while one long step runs.
    """

    def __init__(self, write: Callable[[str], None], every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.write, self.every, self.clock = write, every, clock
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _ticking(self, line: Callable[[], str]) -> Iterator[None]:
        """Write `line()` every `every` seconds until the block ends."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.every):
                self._emit(line())

        thread = threading.Thread(target=tick, name="bmtpt-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _emit(self, line: str) -> None:
        with self._lock:
            self.write(line)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        start, message = self.clock(), message.rstrip(" .…")
        with self._ticking(lambda: f"{message} … {_duration(self.clock() - start)}"):
            yield

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Update]:
        start, state = self.clock(), {"completed": 0, "info": ""}

        def line() -> str:
            completed, elapsed = state["completed"], self.clock() - start
            text = f"{description}: {completed}/{total}"
            if total:
                text += f" ({100 * completed / total:.0f}%)"
            text += f" · {_duration(elapsed)}"
            if 0 < completed < total:
                text += f" · ~{_duration(elapsed * (total - completed) / completed)} left"
            return text + (f" · {state['info']}" if state["info"] else "")

        def update(completed: int, info: str = "") -> None:
            state["completed"] = completed
            if info:
                state["info"] = info

        with self._ticking(line):
            yield update
        self._emit(line())  # the bar's last state (not after an error: the error line says what happened)

    def note(self, message: str) -> None:
        self._emit(message)


def _duration(seconds: float) -> str:
    """`0:01:05`: hours, minutes, seconds."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
