"""`bmtpt-ensemble`: the posterior predictive of the source posterior (issue 25; SPEC §3, "Ensemble").

BMTPT's source posterior is M particles, and the paper adapts one target prompt from their mean.
This method adapts M target prompts at once, member m starting at particle m (W_m = θ_m^S, a = 1,
b = 1) with the paper's prior toward the particle mean θ̄^S (Eq. 6), and predicts by averaging the
members' label distributions (Bayesian model averaging: p(y | x) ≈ (1/M) Σ_m p(y | x, θ_m^T)).

The members share no parameter and train on the same batches in one pass of M·B sequences (the
runner's batched pass of source training); the loss backpropagated is the sum of the members' own
losses, so member m's run is the run `particle-m` would make with the prior toward the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bmtpt_cli.adapter.prompt import TargetPrompts
from bmtpt_cli.artifacts import PromptArtifact
from bmtpt_cli.artifacts.native import MEMBERS, member_tensor_names
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import ALWAYS, FORMATS, PARTICLES_FILE, StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, read_init_file, resolve_init
from bmtpt_cli.methods.particles import POSTERIOR
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.scoring.score import PromptEnsemble


class EnsemblePrompts(nn.Module):
    """M members, each a `TargetPrompts` (its own W_m and (a_mk, b_mk) per task)."""

    fixed = True  # the members' prompts do not depend on the input

    def __init__(self, starts: torch.Tensor, tasks: list[str]):
        super().__init__()
        self.tasks = list(tasks)
        self.members = nn.ModuleList([TargetPrompts(start, tasks) for start in starts])

    @property
    def copies(self) -> int:
        """M: each example runs under every member's prompt in training."""
        return len(self.members)

    @property
    def length(self) -> int:
        return self.members[0].length

    def forward(self, task_ids: list[int], sources: Sequence[str] | None = None) -> torch.Tensor:
        """`(M·B, l, d)`: the batch's prompts under member 0, then member 1, … (member-major)."""
        return torch.cat([member(task_ids) for member in self.members])

    def prior_term(self, task_ids: list[int], centre: torch.Tensor, sigma: float) -> torch.Tensor:
        """Σ_m of each member's prior term toward `centre` (each member's gradient is its own term's)."""
        terms = [member.prior_term(task_ids, centre, sigma) for member in self.members]
        return sum(terms[1:], terms[0])

    def scorer(self, task_index: int) -> PromptEnsemble:
        """Task k's members' prompts `(M, l, d)`, scored by averaging their label distributions."""
        return PromptEnsemble(torch.stack([member.compose(task_index).detach() for member in self.members]))

    def parameter_groups(self, lr_shared: float, lr_scales: float) -> list[dict]:
        """Every member's W at `lr_shared`, every member's a_k, b_k at `lr_scales`."""
        return [{"params": [member.shared for member in self.members], "lr": lr_shared},
                {"params": [p for member in self.members for p in member.scale_parameters()], "lr": lr_scales}]

    def trained(self) -> dict[str, list[torch.Tensor]]:
        return {"the members' shared prompts W": [member.shared for member in self.members],
                "the members' scales a, b": [p for member in self.members for p in member.scale_parameters()]}

    def artifact_tensors(self) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]:
        """Member 0's W and scales as the file's own (`shared`, `tasks.*`), and every member's as `extra`
        (`artifacts.native`: the file's one prompt per task is the members' mean)."""
        extra = {}
        for m, member in enumerate(self.members):
            extra[member_tensor_names(m)[0]] = member.shared.detach().cpu().clone()
            for task, (a, b) in member.export().items():
                names = member_tensor_names(m, task)
                extra[names[0]], extra[names[1]] = a, b
        return self.members[0].shared.detach().cpu().clone(), self.members[0].export(), extra


def start(request: StartRequest) -> TargetInit:
    """Member m starts at particle m; the prior mean is the particle mean θ̄^S (the paper's prior)."""
    init_file = request.init_file or read_init_file(request.source)
    if init_file is None or init_file.particles is None:
        raise BmtptError(f"method bmtpt-ensemble needs {POSTERIOR}, but '{request.source}' is not one: pass the particles file with --init")
    particles = init_file.particles
    if particles.shape[0] < 2:
        raise BmtptError(f"method bmtpt-ensemble averages M ≥ 2 members, but '{request.source}' holds one particle: "
                         "use --method multitask for it, or a posterior of bmtpt source --particles 2 or more")
    init = resolve_init(request.source, request.runner, prompt_length=request.prompt_length, seed=request.seed,
                        required_length=request.required_length, init_file=init_file)
    init.members = particles.detach().clone().float()
    init.details = {**init.details, "members": int(particles.shape[0])}
    return init


def build(init: TargetInit, tasks: list[str], runner: FrozenT5Runner, seed: int) -> EnsemblePrompts:
    """The members from `init.members` `(M, l, d)`."""
    return EnsemblePrompts(init.members, tasks)


def load(artifact: PromptArtifact, runner: FrozenT5Runner) -> EnsemblePrompts:
    """An ensemble's prompts file as its module (`load_prompts` has checked the member tensors)."""
    if not artifact.members:
        raise BmtptError(f"'{artifact.path}' records method bmtpt-ensemble but no members ({MEMBERS}): re-create it with bmtpt adapt")
    module = EnsemblePrompts(torch.zeros(artifact.members, *artifact.shared.shape), artifact.tasks)
    with torch.no_grad():
        for m, member in enumerate(module.members):
            member.shared.copy_(artifact.extra[member_tensor_names(m)[0]])
            for k, task in enumerate(artifact.tasks):
                a, b = member_tensor_names(m, task)
                member.row_scales[k].copy_(artifact.extra[a])
                member.col_scales[k].copy_(artifact.extra[b])
    return module


METHOD = TransferMethod(
    name="bmtpt-ensemble",
    summary="M target prompts, one from each particle with the paper's prior, predicting by their averaged label distribution",
    source=PARTICLES_FILE, prior=ALWAYS, start=start, flag="--particles", make_source=POSTERIOR, prompt_module=build,
    load=load, export_formats=FORMATS,
)
