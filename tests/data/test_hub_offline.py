"""An unreachable hub is found in one short request, not after ~25 s of retries per split."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def test_an_unreachable_hub_switches_to_the_local_cache_at_once(tmp_path):
    script = (
        "import os, sys\n"
        "from bmtpt_cli.data.sources import settle_offline_mode\n"
        "note = settle_offline_mode()\n"
        "print(os.environ.get('HF_HUB_OFFLINE'), note, sep='|')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port on this machine: nothing listens, refused at once
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    offline, note = done.stdout.strip().split("|", 1)
    assert offline == "1" and "cannot be reached" in note and "local cache" in note
    assert time.perf_counter() - started < 30


def test_offline_mode_set_by_the_user_is_left_alone(monkeypatch):
    from bmtpt_cli.data.sources import settle_offline_mode

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert settle_offline_mode() is None
