"""`attempt`: ATTEMPT (Asai et al., EMNLP 2022) — each input's prompt is an attention-weighted mix of
frozen source prompts and a trained target prompt (SPEC §3, "ATTEMPT").

As the reference code (`AkariAsai/ATTEMPT`, `T5Stack.forward`, attn_method "sub") computes it, for an
input x with token embeddings e_1..e_n, source prompts P_1..P_S (frozen, from `source --per-task`)
and the target prompt P_t of x's task:

    x̂ = max_i e_i                                  (max-pool over the input's tokens)
    h = LayerNorm(W_up · SiLU(W_down · x̂))          (d → 100 → d, no biases)
    s_j = max_r(P_j)[r-pooled] · h / T               (each prompt max-pooled over its l vectors; T = d·e)
    a = softmax(s_1..s_S, s_t)
    θ(x) = Σ_j a_j P_j + a_t P_t + P_t

Only P_t (one per target task) and W_down, W_up train; the LayerNorm keeps its initial weight 1 and
bias 0 (the reference never unfreezes it), and T is fixed (its learned temperature errors). Two
deliberate differences, both so that an input's prompt does not depend on the batch it is in: the
max-pool covers the input's own tokens, not the padding (the reference pads to 256 and pools the
pad embeddings too), and W_down, W_up are drawn from the run's seed. The target prompt starts as the
first source prompt (by task name), as the reference's single-task runs start it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from bmtpt_cli.artifacts import PromptArtifact
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import NO_PRIOR, TASK_PROMPTS_DIR, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit
from bmtpt_cli.methods.retrieve import RETRIEVE_PREFIX, read_sources
from bmtpt_cli.runner.runner import FrozenT5Runner

HIDDEN = 100  # the reference's attention sub-network width (attn_W_down: d → 100)


class InputPooler:
    """x̂ for each input text: its token embeddings (the frozen model's), max-pooled over its tokens.

    Holds the runner, so a copy of a prompt module (the best-on-dev state) shares it: deep-copying
    returns the same pooler, never a copy of the model.
    """

    def __init__(self, runner: FrozenT5Runner):
        self.runner = runner

    def __deepcopy__(self, memo):
        return self

    def __call__(self, sources: Sequence[str]) -> torch.Tensor:
        """`(B, d)`: each input's max over its own tokens' embeddings (padding left out)."""
        batch = self.runner.encode(list(sources))
        embeddings = self.runner.vocab_embeddings.detach()[batch.input_ids]  # (B, n, d)
        mask = batch.attention_mask.bool().unsqueeze(-1)  # (B, n, 1)
        return embeddings.masked_fill(~mask, float("-inf")).amax(dim=1)


class AttemptPrompts(nn.Module):
    """ATTEMPT's prompt module: frozen source prompts, one trained target prompt per task, and the
    shared attention sub-network (see the module docstring)."""

    fixed = False
    copies = 1

    def __init__(self, sources: torch.Tensor, target: torch.Tensor, tasks: list[str], pooler: InputPooler | None,
                 generator: torch.Generator | None = None):
        super().__init__()
        count, length, width = sources.shape
        self.tasks = list(tasks)
        self.register_buffer("sources", sources.detach().clone().float())  # (S, l, d), frozen
        self.targets = nn.ParameterList([nn.Parameter(target.detach().clone().float()) for _ in tasks])  # P_t, (l, d)
        self.down = nn.Linear(width, HIDDEN, bias=False)
        self.up = nn.Linear(HIDDEN, width, bias=False)
        for layer in (self.down, self.up):  # nn.Linear's own init (Kaiming uniform), drawn from the run's seed
            bound = 1 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
        self.norm = nn.LayerNorm(width)
        self.norm.requires_grad_(False)  # the reference never trains it: weight 1, bias 0
        self.temperature = width * math.e  # T = d·e (2087 for d = 768)
        self.pooler = pooler

    @property
    def length(self) -> int:
        return self.sources.shape[1]

    def _present(self, task_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's target prompts `(B, l, d)` and their keys `(B, d)`, each task's computed once; tasks
        absent from the batch take no part (their prompts get no gradient, as `TargetPrompts`)."""
        present = sorted(set(task_ids))
        row = {k: i for i, k in enumerate(present)}
        prompts = torch.stack([self.targets[k] for k in present])  # (T, l, d)
        index = torch.tensor([row[k] for k in task_ids], device=prompts.device)
        return prompts[index], prompts.amax(dim=1)[index]

    def attention(self, pooled: torch.Tensor, task_ids: list[int]) -> torch.Tensor:
        """a `(B, S + 1)`: softmax over the source prompts and the input's target prompt, from x̂ `(B, d)`."""
        return self._attention(pooled, self._present(task_ids)[1])

    def _attention(self, pooled: torch.Tensor, target_keys: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.up(nn.functional.silu(self.down(pooled))))  # (B, d)
        source_keys = self.sources.amax(dim=1)  # (S, d): each source prompt max-pooled over its vectors
        scores = torch.cat([h @ source_keys.T, (h * target_keys).sum(dim=1, keepdim=True)], dim=1) / self.temperature
        return torch.softmax(scores, dim=1)

    def mix(self, pooled: torch.Tensor, task_ids: list[int]) -> torch.Tensor:
        """θ(x) `(B, l, d)` from x̂ `(B, d)`: Σ_j a_j P_j + a_t P_t + P_t."""
        targets, keys = self._present(task_ids)  # (B, l, d), (B, d)
        weights = self._attention(pooled, keys)  # (B, S + 1)
        mixed = torch.einsum("bs,sld->bld", weights[:, :-1], self.sources)
        return mixed + (weights[:, -1:] + 1).unsqueeze(-1) * targets

    def forward(self, task_ids: list[int], sources: Sequence[str] | None = None) -> torch.Tensor:
        """Each input's prompt `(B, l, d)`; example b belongs to task `task_ids[b]` and reads `sources[b]`."""
        if sources is None or self.pooler is None:
            raise ValueError("ATTEMPT's prompts depend on the input: pass the input texts (and build it with a pooler)")
        return self.mix(self.pooler(sources).to(self.sources.device), list(task_ids))

    def scorer(self, task_index: int):
        """Task k's prompts for scoring: a function of a chunk's input texts, `length` vectors each."""
        return _TaskPrompts(self, task_index)

    def prior_term(self, task_ids: list[int], centre: torch.Tensor, sigma: float) -> torch.Tensor:
        raise BmtptError("ATTEMPT has no prior term: its method gives no prior centre")

    def parameter_groups(self, lr_shared: float, lr_scales: float) -> list[dict]:
        """The target prompts at `lr_shared`, the attention sub-network at `lr_scales`."""
        return [{"params": list(self.targets), "lr": lr_shared},
                {"params": [self.down.weight, self.up.weight], "lr": lr_scales}]

    def trained(self) -> dict[str, list[torch.Tensor]]:
        return {"the target prompts": list(self.targets), "the attention sub-network": [self.down.weight, self.up.weight]}

    def artifact_tensors(self) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]:
        """W = the first task's target prompt with a = b = 1 (a prompts file needs one), and every
        tensor the module needs as `extra`: the sources, each task's target, the sub-network."""
        length, width = self.sources.shape[1:]
        ones = {task: (torch.ones(length), torch.ones(width)) for task in self.tasks}
        extra = {"sources": self.sources, "down": self.down.weight, "up": self.up.weight,
                 **{f"target.{task}": self.targets[k] for k, task in enumerate(self.tasks)}}
        return self.targets[0].detach().cpu().clone(), ones, {name: t.detach().cpu().clone() for name, t in extra.items()}


class _TaskPrompts:
    """A prompt function for scoring: task k's prompts for a chunk of inputs."""

    def __init__(self, module: AttemptPrompts, task_index: int):
        self.module, self.task_index, self.length = module, task_index, module.length

    def __call__(self, sources: Sequence[str]) -> torch.Tensor:
        return self.module([self.task_index] * len(sources), sources)


def start(request: StartRequest) -> TargetInit:
    """The source prompts of the directory (the target tasks' own left out) and the first of them as
    the target prompt's start; no prior."""
    directory = request.source
    found = read_sources(RETRIEVE_PREFIX + directory, d_model=request.runner.d_model, prompt_length=request.required_length)
    sources = {task: prompt for task, prompt in found.items() if task not in request.target_tasks}
    if len(sources) < 2:
        left = ", ".join(sources) or "none"
        raise BmtptError(
            f"method attempt mixes several source prompts, but '{directory}' holds {left} besides the target tasks' own: "
            "add source tasks with bmtpt source --per-task --resume --tasks ..."
        )
    stacked = torch.stack([source.prompt for source in sources.values()])  # (S, l, d)
    first = next(iter(sources.values()))
    details = {"sources": list(sources), "left_out": [t for t in found if t in request.target_tasks],
               "target_init": first.task}
    return TargetInit(first.prompt.clone(), None, RETRIEVE_PREFIX + directory, "", first.metadata.get("bmtpt.model"),
                      details, stacked)


def build(init: TargetInit, tasks: list[str], runner: FrozenT5Runner, seed: int) -> AttemptPrompts:
    """The module for a run: sources and target from `init`, the sub-network drawn from `seed`."""
    return AttemptPrompts(init.sources, init.prompt, tasks, InputPooler(runner), torch.Generator().manual_seed(seed))


def load(artifact: PromptArtifact, runner: FrozenT5Runner) -> AttemptPrompts:
    """An ATTEMPT prompts file as its module (the caller has checked it against the model)."""
    extra = artifact.extra
    needed = ["sources", "down", "up", *(f"target.{task}" for task in artifact.tasks)]
    missing = [name for name in needed if name not in extra]
    if missing:
        raise BmtptError(f"'{artifact.path}' lacks ATTEMPT's tensors {', '.join(missing)}: re-create it with bmtpt adapt --method attempt")
    module = AttemptPrompts(extra["sources"], extra[f"target.{artifact.tasks[0]}"], artifact.tasks, InputPooler(runner))
    with torch.no_grad():
        for k, task in enumerate(artifact.tasks):
            module.targets[k].copy_(extra[f"target.{task}"])
        module.down.weight.copy_(extra["down"])
        module.up.weight.copy_(extra["up"])
    return module


METHOD = TransferMethod(
    name="attempt", summary="an attention-weighted mix of per-task source prompts and a target prompt, per input (ATTEMPT)",
    source=TASK_PROMPTS_DIR, prior=NO_PRIOR, start=start, flag="--source-prompts",
    make_source="a directory of per-task prompts (`bmtpt source --per-task`)", prompt_module=build, load=load,
    export_formats=(),
)
