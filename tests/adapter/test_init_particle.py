"""`--init-particle i`: W and the prior mean are exactly particle i of a particles file; refusals."""

import pytest
import torch

from bmtpt_cli.methods.init import read_init_file, resolve_init
from bmtpt_cli.methods.init import TargetInit
from bmtpt_cli.methods.registry import method_named
from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, save_particles, save_prompts
from bmtpt_cli.errors import BmtptError


@pytest.fixture(scope="module")
def particles_file(tmp_path_factory):
    particles = torch.randn(3, 4, 64, generator=torch.Generator().manual_seed(0))  # (M, l, d)
    path = tmp_path_factory.mktemp("init") / "particles.safetensors"
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=4, config={})
    save_particles(path, particles, tasks=["demo_nli"], metadata=metadata)
    return path, particles


def test_init_particle_starts_from_exactly_that_particle(runner, particles_file):
    path, particles = particles_file
    for i in range(3):
        init = resolve_init(str(path), runner, prompt_length=None, seed=0, particle=i)
        assert torch.equal(init.prompt, particles[i]) and torch.equal(init.prior_mean, particles[i])
        assert init.details == {"particle": i, "num_particles": 3}
    mean = resolve_init(str(path), runner, prompt_length=None, seed=0)
    torch.testing.assert_close(mean.prompt, particles.mean(dim=0))
    assert mean.details == {}


def test_prior_description_names_the_particle_and_the_rule_that_dropped_it():
    start = TargetInit(torch.zeros(2, 3), torch.zeros(2, 3), "p.safetensors", "", None, {"particle": 2, "num_particles": 5})
    assert "particle 2 of the init" in method_named("particle-2").prior_description(start, True, 1e5)
    mean = TargetInit(torch.zeros(2, 3), torch.zeros(2, 3), "p.safetensors", "", None)
    assert "mean of the init" in method_named("bmtpt").prior_description(mean, False, 1e5)  # bmtpt always has it
    assert method_named("particle-2").prior_description(start, False, 1e5) == "none: --no-prior"
    assert method_named("bmtpt-noprior").prior_description(mean, True, 1e5) == "none: method bmtpt-noprior has no prior"
    random = TargetInit(torch.zeros(2, 3), None, "random", "", None)
    assert method_named("pt").prior_description(random, True, 1e5).startswith("none: the init has no source posterior")


def test_init_particle_refusals(runner, particles_file, tmp_path):
    path, _ = particles_file
    with pytest.raises(BmtptError, match=r"--init-particle 3 is out of range: .* holds M = 3 particles, numbered 0 to 2"):
        resolve_init(str(path), runner, prompt_length=None, seed=0, particle=3)
    with pytest.raises(BmtptError, match="--init 'random' has no particles: pass --init PARTICLES.safetensors"):
        resolve_init("random", runner, prompt_length=4, seed=0, particle=0)
    prompts = tmp_path / "prompts.safetensors"
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=4, config={})
    save_prompts(prompts, torch.randn(4, 64), {"demo_nli": (torch.ones(4), torch.ones(64))}, metadata=metadata)
    with pytest.raises(BmtptError, match="is a prompts file: pass --init PARTICLES.safetensors or drop --init-particle"):
        resolve_init(str(prompts), runner, prompt_length=None, seed=0, particle=0, init_file=read_init_file(str(prompts)))
