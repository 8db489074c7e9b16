"""A hub model that cannot be reached fails at once in one line, as the data load does, instead of
retrying for half a minute (issue 26 item 7)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_an_unreachable_uncached_hub_model_fails_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # the tests set it; a user may not
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "BMTPT_PRESET": "tiny"}
    model = "bmtpt-test/no-such-model"
    result = subprocess.run(
        [sys.executable, "-m", "bmtpt_cli", "source", "--model", model, "--steps", "1", "--out", tmp_path / "p.safetensors"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "Retrying" not in output and "thrown while requesting" not in output and "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and model in errors[0], result.stderr
    assert "HF_HUB_OFFLINE" in errors[0] and "local directory" in errors[0]
    assert not (tmp_path / "p.safetensors").exists()
