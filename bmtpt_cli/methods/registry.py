"""The transfer methods by name: a plain dict, filled here explicitly (no import-time registration).

Adding a method is one module stating a `TransferMethod` (see `methods.base`), one line below and
its tests. `particle-I` is a family (one method per particle number), made by `method_named`.
"""

from __future__ import annotations

import re

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods import attempt, ensemble, from_prompts, multitask, particles, pt, spot
from bmtpt_cli.methods.base import TASK_PROMPTS_DIR, TransferMethod
from bmtpt_cli.methods.init import InitFile, RANDOM_INIT
from bmtpt_cli.methods.retrieve import RETRIEVE_PREFIX

METHODS: dict[str, TransferMethod] = {
    "pt": pt.METHOD,
    "multitask": multitask.METHOD,
    "bmtpt": particles.BMTPT,
    "bmtpt-noprior": particles.BMTPT_NOPRIOR,
    "bmtpt-ensemble": ensemble.METHOD,
    "spot": spot.METHOD,
    "spot-oracle": spot.ORACLE,
    "from-prompts": from_prompts.METHOD,
    "attempt": attempt.METHOD,
}
PARTICLE_METHOD = re.compile(r"particle-(\d+)")
AVERAGE_METHOD = re.compile(r"spot-average-(\d+)")
BEST_OF_METHOD = re.compile(r"spot-best-of-(\d+)")
MIXTURE_METHOD = re.compile(r"spot-mixture-(\d+)")


def method_names() -> str:
    """The names `--method` and `--methods` take, for help texts and errors."""
    return ", ".join([*METHODS, "particle-I", "spot-average-K", "spot-best-of-K", "spot-mixture-K"])


def method_named(name: str, *, flag: str = "--method") -> TransferMethod:
    """The method called `name` (`particle-I`: particle I of --particles); an unknown name is refused
    in one line listing the known ones."""
    if name in METHODS:
        return METHODS[name]
    numbered = PARTICLE_METHOD.fullmatch(name)
    if numbered:
        return particles.particle(int(numbered.group(1)))
    averaged = AVERAGE_METHOD.fullmatch(name)
    if averaged:
        return spot.average(int(averaged.group(1)))
    best = BEST_OF_METHOD.fullmatch(name)
    if best:
        return spot.best_of(int(best.group(1)))
    mixed = MIXTURE_METHOD.fullmatch(name)
    if mixed:
        return spot.mixture(int(mixed.group(1)))
    raise BmtptError(f"unknown method '{name}' in {flag}: use {method_names()} (e.g. particle-0, spot-average-3)")


def infer_method(init: str, init_file: InitFile | None, init_particle: int | None, prior: bool) -> TransferMethod:
    """The method `bmtpt adapt --init X` means when no --method is given: random → pt, retrieve:DIR →
    spot, --init-particle I → particle-I, a prompts file → from-prompts, a one-particle file →
    multitask, a posterior → bmtpt (bmtpt-noprior with --no-prior)."""
    if init == RANDOM_INIT:
        return METHODS["pt"]
    if init.startswith(RETRIEVE_PREFIX):
        return METHODS["spot"]
    if init_particle is not None:
        return particles.particle(init_particle)
    if init_file is None or init_file.particles is None:
        return METHODS["from-prompts"]
    if init_file.particles.shape[0] == 1:
        return METHODS["multitask"]
    return METHODS["bmtpt" if prior else "bmtpt-noprior"]


def resolve_method(name: str | None, init: str, init_file: InitFile | None, init_particle: int | None,
                   prior: bool) -> TransferMethod:
    """The method of a run: `name` (checked against what `init` is, in one line naming both), or the
    one `init` means (`infer_method`)."""
    if name is None:
        return infer_method(init, init_file, init_particle, prior)
    method = method_named(name)
    if init_particle is not None and method.details.get("particle") != init_particle:
        raise BmtptError(f"--init-particle {init_particle} starts from a particle, but --method {name} does not: "
                         f"use --method particle-{init_particle}, or drop --init-particle")
    if not method.needs_source:
        if init != RANDOM_INIT:
            raise BmtptError(f"method {name} starts from no source file, but --init is '{init}': drop --init "
                             f"(or pass --init random), or choose the method '{init}' is for")
        return method
    if init == RANDOM_INIT:
        raise BmtptError(f"method {name} starts from {method.make_source}, but --init is random: pass the file with --init")
    if method.source == TASK_PROMPTS_DIR:
        if init_file is not None:
            raise BmtptError(f"method {name} starts from {method.make_source}, but '{init}' is a file: pass the directory")
        return method
    if init.startswith(RETRIEVE_PREFIX):
        raise BmtptError(f"--init {init} asks for retrieval (method spot), but --method is {name}: give one of them")
    method.check_source(init, init_file)
    return method


def method_source(method: TransferMethod, init: str) -> str | None:
    """The source a method starts from, given `--init`: none, a file, or retrieval's directory."""
    if not method.needs_source:
        return None
    return init.removeprefix(RETRIEVE_PREFIX) if method.source == TASK_PROMPTS_DIR else init


def method_of_artifact(metadata: dict[str, str]) -> TransferMethod:
    """The method a prompts file records (`bmtpt.method`). Files written before methods were recorded,
    and the per-task prompts of `source --per-task`, hold fixed prompts W ⊙ a_k b_kᵀ: from-prompts."""
    name = metadata.get("bmtpt.method", "")
    if name in METHODS or any(family.fullmatch(name) for family in (PARTICLE_METHOD, AVERAGE_METHOD, BEST_OF_METHOD, MIXTURE_METHOD)):
        return method_named(name)
    return METHODS["from-prompts"]


def source_spec(name: str | None, init: str) -> str:
    """`--init` as a method reads it: with `--method spot` (a method that starts from a directory),
    `--init DIR` means `retrieve:DIR`."""
    if name is not None and method_named(name).source == TASK_PROMPTS_DIR and not init.startswith(RETRIEVE_PREFIX):
        return RETRIEVE_PREFIX + init
    return init
