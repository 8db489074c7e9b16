"""What a checkpoint holds, checked before `--resume` hands any of it to torch.

`torch.load(weights_only=True)` only guarantees that a checkpoint is made of tensors and plain
values; it says nothing about whether they fit the run. An Adam state of the wrong shape reaches
the fused AdamW kernel, which writes out of bounds (a crash, not an error); a step of 1000 in a
run of 100, −5 or 10.5 would silently resume somewhere meaningless; a missing key or a value of
another type is a traceback deep in torch. `check_fields` and `check_resumable` (the loop's common state) and
`check_tensor` / `check_tensors` (each loop's own tensors) turn every such checkpoint, from another
bmtpt version or edited by hand, into one line naming the checkpoint and the field.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import torch

from bmtpt_cli.errors import BmtptError, excerpt

COMMON_KEYS = ("optimizer", "scheduler", "rng", "step", "fingerprint")
"""The fields `TrainingLoop.save` writes into every checkpoint."""

ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")
"""The per-parameter state torch's Adam and AdamW keep (with `max_exp_avg_sq` under amsgrad)."""


def damaged(path: Path, problem: str) -> BmtptError:
    """The one-line error for a checkpoint whose contents do not fit the run."""
    return BmtptError(
        f"checkpoint '{path}' does not fit this run ({problem}): it was edited or written by another bmtpt "
        "version — delete it and start fresh (or rerun without --resume and with --force)"
    )


def is_number(value: Any) -> bool:
    """A real number (int or float), not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_fields(path: Path, state: Any) -> None:
    """Refuse a checkpoint whose common fields are missing or of the wrong type (checked before its
    fingerprint is compared, so a changed setting is named as such rather than as a misfit)."""
    if not isinstance(state, dict):
        raise damaged(path, f"it holds a {type(state).__name__}, not a checkpoint's fields")
    missing = [key for key in COMMON_KEYS if key not in state]
    if missing:
        raise damaged(path, f"no {', '.join(missing)}")
    fingerprint = state["fingerprint"]
    if not isinstance(fingerprint, dict) or not all(isinstance(key, str) for key in fingerprint):
        raise damaged(path, f"fingerprint is a {type(fingerprint).__name__}, not a dict of settings")
    changes = state.get("lr_changes", [])  # learning rates lowered by earlier resumes (runtime.loop)
    if not isinstance(changes, list) or not all(isinstance(change, dict) for change in changes):
        raise damaged(path, f"lr_changes is {excerpt(changes)}, not a list of records")


def check_resumable(path: Path, state: dict, *, total_steps: int, optimizer, scheduler) -> int:
    """Refuse a checkpoint (fields already checked by `check_fields`) whose step is out of range or
    whose optimizer, scheduler or RNG state does not fit this run; returns its step."""
    step = state["step"]
    if not _is_int(step) or not 0 <= step <= total_steps:
        raise damaged(path, f"step {excerpt(step)} is not a whole number from 0 to the run's {total_steps} steps")
    if optimizer is not None:
        check_optimizer_state(path, state["optimizer"], optimizer, step=step)
    if scheduler is not None:
        check_scheduler_state(path, state["scheduler"], scheduler, step=step)
    check_rng_state(path, state["rng"])
    return step


# ----------------------------------------------------------------------------------- optimizer
def check_optimizer_state(path: Path, saved: Any, optimizer: torch.optim.Optimizer, *, step: int) -> None:
    """The saved optimizer state fits `optimizer`: as many groups and parameters, hyperparameters
    of the right types, and per parameter exactly Adam's state with each tensor of its parameter's
    shape and dtype (finite, second moments ≥ 0, a scalar step within the run's steps)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(saved.get("param_groups"), list):
        raise damaged(path, "the optimizer state is not an optimizer's state dict")
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        raise damaged(path, f"the optimizer state has {len(saved['param_groups'])} parameter groups, the run has {len(groups)}")
    params: list[torch.Tensor] = []
    amsgrad: list[bool] = []
    for number, (group, current) in enumerate(zip(saved["param_groups"], groups)):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise damaged(path, f"optimizer parameter group {number} is not a parameter group")
        first = len(params)
        if group["params"] != list(range(first, first + len(current["params"]))):
            raise damaged(
                path, f"optimizer parameter group {number} lists parameters {excerpt(group['params'])}, the run's group "
                f"has {len(current['params'])}"
            )
        for key, value in group.items():
            if key != "params" and not _fits_hyperparameter(value, current.get(key, _UNKNOWN)):
                raise damaged(path, f"optimizer setting '{excerpt(key)}' of group {number} is {excerpt(value)}")
        params.extend(current["params"])
        amsgrad.extend([bool(group.get("amsgrad", False))] * len(current["params"]))
    for index, entry in saved["state"].items():
        if not _is_int(index) or not 0 <= index < len(params):
            raise damaged(path, f"the optimizer state names parameter {excerpt(index)}, the run has {len(params)}")
        _check_adam_entry(path, index, entry, params[index], amsgrad=amsgrad[index], step=step)


_UNKNOWN = object()


def _fits_hyperparameter(value: Any, current: Any) -> bool:
    """A saved hyperparameter has the kind of the run's own (an unknown key: a plain value)."""
    if current is _UNKNOWN:
        return value is None or isinstance(value, (bool, int, float, str))
    if current is None or isinstance(current, bool):
        return value is None or isinstance(value, bool)
    if is_number(current):
        return is_number(value) and math.isfinite(value) and value >= 0
    if isinstance(current, (tuple, list)):
        return (
            isinstance(value, (tuple, list)) and len(value) == len(current)
            and all(is_number(v) and math.isfinite(v) for v in value)
        )
    if isinstance(current, torch.Tensor):
        return isinstance(value, torch.Tensor) and value.shape == current.shape and bool(value.isfinite().all())
    return value is None or isinstance(value, (bool, int, float, str))


def _check_adam_entry(path: Path, index: int, entry: Any, param: torch.Tensor, *, amsgrad: bool, step: int) -> None:
    if not isinstance(entry, dict):
        raise damaged(path, f"the optimizer state of parameter {index} is not a dict")
    expected = set(ADAM_STATE) | ({"max_exp_avg_sq"} if amsgrad else set())
    if set(entry) != expected:
        names = ", ".join(sorted(map(str, set(entry) ^ expected)))
        raise damaged(path, f"the optimizer state of parameter {index} has other entries than Adam's ({excerpt(names)})")
    count = entry["step"]
    if not isinstance(count, torch.Tensor) or count.dim() != 0 or count.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise damaged(path, f"the optimizer step of parameter {index} is not a scalar tensor")
    value = float(count)
    if not (math.isfinite(value) and value == int(value) and 0 <= value <= step):
        raise damaged(path, f"the optimizer step of parameter {index} is {value:g}, not a whole number from 0 to {step}")
    for name in sorted(expected - {"step"}):
        tensor = entry[name]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != param.shape or tensor.dtype != param.dtype:
            found = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise damaged(
                path, f"the optimizer's {name} of parameter {index} is {found}, the parameter is {tuple(param.shape)} {param.dtype}"
            )
        if not bool(tensor.isfinite().all()) or (name != "exp_avg" and bool((tensor < 0).any())):
            raise damaged(path, f"the optimizer's {name} of parameter {index} holds {'non-finite' if name == 'exp_avg' else 'negative or non-finite'} values")


# ----------------------------------------------------------------------------------- scheduler
def check_scheduler_state(path: Path, saved: Any, scheduler, *, step: int) -> None:
    """The saved schedule fits `scheduler`: only its own fields, each of the same kind, one learning
    rate per parameter group, no saved functions, and its position at the checkpoint's step."""
    current = scheduler.state_dict()
    if not isinstance(saved, dict):
        raise damaged(path, f"the scheduler state is a {type(saved).__name__}, not a dict")
    # load_state_dict sets every field as an attribute of the scheduler: a field of another torch
    # version (a plain value) is harmless, one named like a method (`step`) or holding more is not
    unknown = [key for key in saved if key not in current and (
        not isinstance(key, str) or callable(getattr(scheduler, key, None))
        or not (saved[key] is None or isinstance(saved[key], (bool, int, float, str))))]
    if unknown:
        raise damaged(path, f"the scheduler state has fields this bmtpt does not know ({excerpt(', '.join(map(str, unknown)))})")
    for key, value in saved.items():
        if key not in current:
            continue
        mine = current[key]
        if isinstance(mine, list):
            fits = isinstance(value, list) and len(value) == len(mine) and all(
                (item is None) if other is None else (is_number(item) and math.isfinite(item))
                for item, other in zip(value, mine)
            )
        elif isinstance(mine, bool):
            fits = isinstance(value, bool)
        elif _is_int(mine):
            fits = _is_int(value)
        elif is_number(mine):
            fits = is_number(value) and math.isfinite(value)
        else:
            fits = value is None or isinstance(value, (bool, int, float, str))
        if not fits:
            raise damaged(path, f"the scheduler's {key} is {excerpt(value)}")
    if "last_epoch" in saved and saved["last_epoch"] != step:
        raise damaged(path, f"the scheduler is at step {saved['last_epoch']}, the checkpoint at step {step}")


# ----------------------------------------------------------------------------------- RNG
def check_rng_state(path: Path, saved: Any) -> None:
    """The saved RNG states are states each generator accepts: tried on throwaway generators, so
    nothing the run uses changes until all of them are known to be good."""
    if not isinstance(saved, dict) or not all(key in saved for key in ("torch", "data", "python")):
        raise damaged(path, "the rng field is not the RNG states bmtpt saves")
    try:
        for key in ("torch", "data"):
            if not isinstance(saved[key], torch.Tensor) or saved[key].dtype != torch.uint8:
                raise TypeError(key)
            torch.Generator().set_state(saved[key])
        version, internal, gauss = saved["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        if "cuda" in saved and not all(isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in saved["cuda"]):
            raise TypeError("cuda")
        if "numpy" in saved:
            import numpy as np

            kind, keys, position, has_gauss, gauss = saved["numpy"]
            np.random.RandomState().set_state((kind, keys.numpy().astype("uint32"), position, has_gauss, gauss))
    except Exception as exc:  # noqa: BLE001 — each generator rejects a bad state with its own exception type
        raise damaged(path, f"an RNG state cannot be restored ({type(exc).__name__})") from None


# ----------------------------------------------------------------------------------- the loops' tensors
def check_tensor(path: Path, state: dict, key: str, like: torch.Tensor, *, label: str | None = None) -> torch.Tensor:
    """`state[key]`, refused unless it is a finite tensor of `like`'s shape and dtype."""
    label = label or key
    if key not in state:
        raise damaged(path, f"no {label}")
    tensor = state[key]
    if not isinstance(tensor, torch.Tensor) or tensor.shape != like.shape or tensor.dtype != like.dtype:
        found = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor) else f"a {type(tensor).__name__}"
        raise damaged(path, f"{label} is {found}, the run's is {tuple(like.shape)} {like.dtype}")
    if not bool(tensor.isfinite().all()):
        raise damaged(path, f"{label} holds NaN or Inf values")
    return tensor


def check_tensors(path: Path, state: dict, key: str, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state[key]`, a state dict refused unless it has exactly `like`'s tensors, each as `check_tensor`."""
    if key not in state:
        raise damaged(path, f"no {key}")
    saved = state[key]
    if not isinstance(saved, dict) or set(saved) != set(like):
        names = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
        raise damaged(path, f"{key} holds {excerpt(names)}, the run's are {excerpt(sorted(like))}")
    for name, tensor in like.items():
        check_tensor(path, saved, name, tensor, label=f"{key}.{name}")
    return saved


def check_best(path: Path, state: dict, like: dict[str, torch.Tensor], *, step: int) -> None:
    """An adaptation checkpoint's own fields: the prompts and the best dev state so far (its prompts,
    a score that is a number or −inf before any evaluation, metrics by task, a step ≤ the checkpoint's)."""
    check_tensors(path, state, "prompts", like)
    check_tensors(path, state, "best_prompts", like)
    for key in ("best_score", "best_dev", "best_step"):
        if key not in state:
            raise damaged(path, f"no {key}")
    score, dev, best_step = state["best_score"], state["best_dev"], state["best_step"]
    if not is_number(score) or math.isnan(score) or score == math.inf:
        raise damaged(path, f"best_score is {excerpt(score)}, not a number")
    if not isinstance(dev, dict) or not all(isinstance(k, str) and is_number(v) for k, v in dev.items()):
        raise damaged(path, f"best_dev is {excerpt(dev)}, not metrics by task")
    if not _is_int(best_step) or not 0 <= best_step <= step:
        raise damaged(path, f"best_step {excerpt(best_step)} is not a whole number from 0 to the checkpoint's step {step}")
