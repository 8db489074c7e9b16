"""What produced a result: software versions, the code's git commit, the device, CPU and threads, the time.

Recorded in every artifact (`bmtpt.provenance`) and every results report, so a number can be
traced to everything that made it. The time honours `SOURCE_DATE_EPOCH` (the reproducible-builds
convention), so a run that sets it writes byte-identical artifacts.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("bmtpt", "torch", "transformers", "datasets", "safetensors")


def provenance(device: object) -> dict:
    """Versions, git commit (when bmtpt runs from a checkout), device, CPU, threads and UTC time of this run."""
    return {
        "versions": {"python": platform.python_version(), **package_versions()},
        "git": git_commit(),
        "device": str(device),
        **cpu_and_threads(),
        "created": created_at(),
    }


def cpu_and_threads() -> dict:
    """What round-off depends on besides the versions: PyTorch's thread counts, the CPU model, the
    instruction set PyTorch's CPU kernels use (`torch.backends.cpu.get_cpu_capability()`: AVX2,
    AVX512, …) and the machine architecture."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, sysctl on macOS), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            found = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            if found.returncode == 0 and found.stdout.strip():
                return found.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or platform.machine() or "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on ("" when one is not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """`<commit>` (with `-dirty` for uncommitted changes) of the checkout bmtpt runs from, or ""."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return ""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if commit.returncode != 0:
        return ""
    return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def created_at() -> str:
    """The UTC time as ISO 8601, or `SOURCE_DATE_EPOCH`'s when set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
        if epoch and epoch.isdigit()
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return moment.replace(microsecond=0).isoformat()
