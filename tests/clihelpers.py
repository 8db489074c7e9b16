"""Running the bmtpt CLI in-process for tests."""

from pathlib import Path

from typer.testing import CliRunner

from bmtpt_cli.app import app

FAST = {  # the demo preset, cut down so each command takes a second or two
    "source": ["--steps", "6", "--particles", "2", "--checkpoint-every", "2", "--warmup-steps", "1"],
    "adapt": ["--steps", "4", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "1"],
}


def bmtpt(*args: str):
    """Invoke `bmtpt ARGS` and return click's Result (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes, to check that nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
