"""What `bmtpt project` reads (SPEC §5f): the artifact to move, and the prompt pairs of the distance
objective, each checked in one line before any model loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, file_sha256, load_particles, load_prompts, read_kind
from bmtpt_cli.artifacts.projector import ProjectorFile
from bmtpt_cli.artifacts.task_prompts import TaskPrompt, read_task_prompts
from bmtpt_cli.errors import BmtptError, excerpt

DIRECTORY = "directory"


def same_model(first: str, second: str) -> bool:
    """Whether two model names mean one model: the same name, or two paths to the same directory."""
    if first == second:
        return True
    a, b = Path(first).expanduser(), Path(second).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


@dataclass
class SourceArtifact:
    """The artifact `project` moves: its prompts `(P, l, d_src)` and the model they were made with.

    `kind`: particles (P = M particles, every one serving all `tasks`), prompts (one file, a prompt
    per task: its composed W ⊙ a_k b_kᵀ) or directory (per-task prompts files, one prompt per task).
    """

    path: Path
    kind: str
    prompts: torch.Tensor  # (P, l, d_src)
    tasks: list[str]
    model: str
    files: dict[str, Path]  # task → the file its prompt came from (a particles file: the file, for every task)
    sha256: dict[str, str] = field(init=False)  # file name → SHA-256, of every file read

    def __post_init__(self):
        self.sha256 = {path.name: file_sha256(path) for path in dict.fromkeys(self.files.values())}

    @property
    def length(self) -> int:
        return self.prompts.shape[1]

    @property
    def width(self) -> int:
        return self.prompts.shape[2]

    @property
    def per_task(self) -> bool:
        """One prompt per task (a prompts file or a directory), not a posterior over all of them."""
        return self.kind != PARTICLES

    @property
    def writes_directory(self) -> bool:
        """Whether the projection is a directory of per-task prompts (a directory, or a multi-task prompts file)."""
        return self.kind == DIRECTORY or (self.kind == PROMPTS and len(self.tasks) > 1)

    def serves(self, tasks: list[str]) -> dict[str, list[int]]:
        """For each training task, the prompts its examples are scored under: every particle, or the
        task's own prompt (refused for a task the artifact holds no prompt of)."""
        if not self.per_task:
            return {task: list(range(self.prompts.shape[0])) for task in tasks}
        missing = [task for task in tasks if task not in self.tasks]
        if missing:
            raise BmtptError(
                f"--tasks names {', '.join(missing)}, for which '{self.path}' holds no prompt: with per-task prompts each "
                f"training task projects its own prompt; name tasks among {', '.join(self.tasks)}"
            )
        return {task: [self.tasks.index(task)] for task in tasks}


def recorded_model(metadata: dict[str, str], path: Path) -> str:
    """The model an artifact records (`bmtpt.model`), refused when it records none."""
    model = metadata.get("bmtpt.model", "")
    if not model:
        raise BmtptError(f"'{path}' records no model (bmtpt.model), so the source of the projection is unknown: re-create it with bmtpt")
    return model


def read_source_artifact(path: Path) -> SourceArtifact:
    """Read `--prompts`: a particles file, a prompts file, or a directory of per-task prompts files."""
    path = Path(path)
    if path.is_dir():
        found = read_task_prompts(path, flag="--prompts")
        model = one_model(found, path, "--prompts")
        prompts = stacked(found, path, "--prompts")
        return SourceArtifact(path, DIRECTORY, prompts, list(found), model, {task: p.path for task, p in found.items()})
    if not path.is_file():
        raise BmtptError(f"'{path}' not found: pass a particles file, a prompts file or a directory of per-task prompts with --prompts")
    kind = read_kind(path)
    if kind == PROMPTS:
        artifact = load_prompts(path, flag="--prompts")
        prompts = torch.stack([artifact.prompt(task) for task in artifact.tasks])  # (K, l, d): composed W ⊙ a_k b_kᵀ
        return SourceArtifact(path, PROMPTS, prompts, artifact.tasks, recorded_model(artifact.metadata, path),
                              dict.fromkeys(artifact.tasks, path))
    if kind in (PARTICLES, None):  # None: the particles loader says what is wrong with the file
        particles, metadata = load_particles(path, flag="--prompts")
        if particles.shape[0] == 0:
            raise BmtptError(f"particles file '{path}' holds no particles (M = 0): re-create it with bmtpt source")
        tasks = [task for task in metadata.get("bmtpt.tasks", "").split(",") if task]
        return SourceArtifact(path, PARTICLES, particles, tasks, recorded_model(metadata, path), dict.fromkeys(tasks or [""], path))
    raise BmtptError(f"'{path}' is a bmtpt {excerpt(kind)} file: --prompts takes a particles file, a prompts file or a directory of per-task prompts")


def one_model(found: dict[str, TaskPrompt], directory: Path, flag: str) -> str:
    """The one model every prompt of a per-task directory was made with."""
    models = {recorded_model(prompt.metadata, prompt.path): prompt.path.name for prompt in found.values()}
    if len(models) > 1:
        (a, first), (b, second) = list(models.items())[:2]
        raise BmtptError(
            f"{flag} '{directory}' holds prompts of several models ('{first}': {a}, '{second}': {b}): one projector maps "
            "the prompts of one model; keep one model's prompts in the directory"
        )
    return next(iter(models))


def stacked(found: dict[str, TaskPrompt], directory: Path, flag: str) -> torch.Tensor:
    """The prompts of a per-task directory as one tensor `(K, l, d)`, refused where their shapes differ."""
    shapes = {tuple(prompt.prompt.shape): prompt.path.name for prompt in found.values()}
    if len(shapes) > 1:
        (a, first), (b, second) = list(shapes.items())[:2]
        raise BmtptError(
            f"{flag} '{directory}' holds prompts of different shapes ('{first}': {a[0]} × {a[1]}, '{second}': "
            f"{b[0]} × {b[1]}): a projector maps one prompt length and width; keep prompts of one shape"
        )
    return torch.stack([prompt.prompt for prompt in found.values()])


def files_sha256(found: dict[str, TaskPrompt]) -> dict[str, str]:
    """The SHA-256 of every file a per-task directory's prompts came from, by file name."""
    return {prompt.path.name: file_sha256(prompt.path) for prompt in {p.path: p for p in found.values()}.values()}


# ----------------------------------------------------------------------------- the distance objective's pairs
@dataclass
class DistancePairs:
    """The tasks both directories hold: source-model prompts `(K, l, d_src)` and the target model's `(K, l, d_tgt)`."""

    tasks: list[str]
    sources: torch.Tensor
    targets: torch.Tensor
    sha256: dict[str, str]  # "--source-prompts/FILE" and "--target-prompts/FILE" → SHA-256


def read_distance_pairs(source_dir: Path, target_dir: Path, artifact: SourceArtifact, target_model: str) -> DistancePairs:
    """The (source prompt, target prompt) pairs of the tasks both directories hold, matched by task name.

    Refused in one line: source prompts of another model than the artifact's, target prompts of
    another model than `target_model`, prompts of another length or width than the artifact's, or no
    common task.
    """
    sources = read_task_prompts(source_dir, flag="--source-prompts")
    targets = read_task_prompts(target_dir, flag="--target-prompts")
    source_model, target_made_with = one_model(sources, source_dir, "--source-prompts"), one_model(targets, target_dir, "--target-prompts")
    if not same_model(source_model, artifact.model):
        raise BmtptError(
            f"--source-prompts '{source_dir}' were made with {source_model}, but '{artifact.path}' with {artifact.model}: the "
            f"projector learns to move prompts of {artifact.model}; pass that model's per-task prompts"
        )
    if not same_model(target_made_with, target_model):
        raise BmtptError(
            f"--target-prompts '{target_dir}' were made with {target_made_with}, but --model is {target_model}: pass per-task "
            f"prompts made on {target_model} (bmtpt source --per-task --model {target_model}), or --model {target_made_with}"
        )
    source_stack, target_stack = stacked(sources, source_dir, "--source-prompts"), stacked(targets, target_dir, "--target-prompts")
    for flag, directory, stack in (("--source-prompts", source_dir, source_stack), ("--target-prompts", target_dir, target_stack)):
        if stack.shape[1] != artifact.length:
            raise BmtptError(
                f"{flag} '{directory}' holds prompts of length {stack.shape[1]}, '{artifact.path}' of length {artifact.length}: "
                f"a projector maps one prompt length; make the per-task prompts with --prompt-length {artifact.length}"
            )
    if source_stack.shape[2] != artifact.width:
        raise BmtptError(
            f"--source-prompts '{source_dir}' hold prompts of width {source_stack.shape[2]}, '{artifact.path}' of width "
            f"{artifact.width}: pass per-task prompts of the artifact's model"
        )
    common = [task for task in sources if task in targets]
    if not common:
        raise BmtptError(
            f"--source-prompts '{source_dir}' ({', '.join(sources)}) and --target-prompts '{target_dir}' ({', '.join(targets)}) "
            "share no task: the distance objective pairs the two models' prompts of the same task; make prompts of common tasks"
        )
    names = list(sources)
    index = [names.index(task) for task in common]
    target_names = list(targets)
    shas = {f"--source-prompts/{name}": sha for name, sha in files_sha256({t: sources[t] for t in common}).items()}
    shas |= {f"--target-prompts/{name}": sha for name, sha in files_sha256({t: targets[t] for t in common}).items()}
    return DistancePairs(common, source_stack[index], target_stack[[target_names.index(task) for task in common]], shas)


# ----------------------------------------------------------------------------- a saved projector
def check_projector_fits(saved: ProjectorFile, artifact: SourceArtifact, target_model: str | None) -> None:
    """Refuse a saved projector that was trained from another model than the artifact's, for another
    prompt length or width, or to another model than `target_model` (None: the projector's own)."""
    spec = saved.spec
    if not same_model(spec.source_model, artifact.model):
        raise BmtptError(
            f"'{saved.path}' was trained to move prompts of {spec.source_model}, but '{artifact.path}' was made with "
            f"{artifact.model}: pass an artifact of {spec.source_model}, or drop --projector to train a projector for {artifact.model}"
        )
    if (spec.prompt_length, spec.d_source) != (artifact.length, artifact.width):
        raise BmtptError(
            f"'{saved.path}' maps prompts of length {spec.prompt_length} and width {spec.d_source}, '{artifact.path}' holds "
            f"length {artifact.length} and width {artifact.width}: drop --projector to train one for these prompts"
        )
    if target_model is not None and not same_model(spec.target_model, target_model):
        raise BmtptError(
            f"'{saved.path}' maps to {spec.target_model}, but --model is {target_model}: drop --model (the projector's model "
            "is used) or drop --projector to train one for that model"
        )
