"""SPoT-style retrieval (`--init retrieve:DIR`): the source prompt built to be nearest to the target's
task embedding is chosen, the similarities recorded are `task_similarity`'s, and bad DIRs are refused."""

import dataclasses

import pytest
import torch

from bmtpt_cli.methods.init import RetrievalTarget, read_init_file, resolve_init
from bmtpt_cli.adapter.train import adapt
from bmtpt_cli.artifacts import PROMPTS, common_metadata, file_sha256, save_prompts
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.sampling import EpochBatches
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.similarity import task_similarity
from configs import adapt_config

LENGTH, SEED, STEPS = 4, 5, 3
CONFIG = adapt_config(batch_size=4, steps=50, warmup_steps=7, eval_every=10, weight_decay=1e-5)


@pytest.fixture(scope="module")
def target():
    (task,) = resolve_tasks("demo_nli")
    return RetrievalTarget(task.name, task.examples("train")[:8], "words", steps=STEPS, measure="mean", config=CONFIG)


@pytest.fixture(scope="module")
def embedding(runner, target):
    """The task embedding computed independently: vanilla prompt tuning (the `--init random` draw of
    the seed, no prior, no warm-up, no dev selection) for STEPS steps on the target's examples."""
    (task,) = resolve_tasks(target.task)
    start = resolve_init("random", runner, prompt_length=LENGTH, seed=SEED).prompt
    config = dataclasses.replace(CONFIG, steps=STEPS, warmup_steps=0, eval_every=None, seed=SEED)
    result = adapt(runner, [task], {task.name: target.examples}, {}, start, config,
                   batches=EpochBatches(task.name, target.examples, CONFIG.batch_size))
    return result.prompts.compose(0).detach()  # (l, d)


def _write(directory, task, prompt, d_model=64):
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=d_model, prompt_length=prompt.shape[0], config={})
    path = directory / f"{task}.safetensors"
    save_prompts(path, prompt, {task: (torch.ones(prompt.shape[0]), torch.ones(prompt.shape[1]))}, metadata=metadata)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory, embedding):
    """A DIR with one prompt near the target's embedding, two far ones, and the target's own prompt."""
    directory = tmp_path_factory.mktemp("sources")
    noise = torch.Generator().manual_seed(1)
    near = embedding + 0.01 * embedding.std() * torch.randn(embedding.shape, generator=noise)
    prompts = {
        "demo_sentiment": near,
        "demo_topic": torch.randn(embedding.shape, generator=noise) * embedding.std(),
        "demo_review": -embedding + 0.5 * torch.randn(embedding.shape, generator=noise) * embedding.std(),
        "demo_nli": embedding.clone(),  # the target's own task: never a transfer source
    }
    for task, prompt in prompts.items():
        _write(directory, task, prompt)
    return directory, prompts


@pytest.mark.parametrize("measure", ["mean", "tokens"])
def test_retrieval_picks_the_source_prompt_constructed_to_be_nearest(runner, target, embedding, sources, measure):
    directory, prompts = sources
    init = resolve_init(
        f"retrieve:{directory}", runner, prompt_length=None, seed=SEED,
        target=dataclasses.replace(target, measure=measure),
    )
    details = init.details
    assert details["method"] == "retrieve" and details["chosen"] == "demo_sentiment" and details["measure"] == measure
    assert details["excluded"] == ["demo_nli"]
    assert set(details["similarities"]) == {"demo_sentiment", "demo_topic", "demo_review"}
    for task, value in details["similarities"].items():  # against the independent embedding
        assert value == pytest.approx(task_similarity(embedding, prompts[task], measure), rel=1e-6, abs=1e-9), task
    assert max(details["similarities"], key=details["similarities"].get) == "demo_sentiment"
    assert torch.equal(init.prompt, prompts["demo_sentiment"]) and torch.equal(init.prior_mean, init.prompt)
    assert init.sha256 == file_sha256(directory / "demo_sentiment.safetensors")
    assert details["embedding"] == {"task": "demo_nli", "steps": STEPS, "seed": SEED, "examples": 8,
                                    "init": "random vocabulary draw from the seed", "prior": "none"}


def test_retrieve_is_not_an_init_file_and_a_bare_directory_is_refused(tmp_path):
    assert read_init_file("retrieve:anything") is None
    with pytest.raises(BmtptError, match=f"is a directory: pass --init retrieve:{tmp_path} "):
        read_init_file(str(tmp_path))


def test_refusals_name_the_directory_and_the_fix(runner, target, tmp_path):
    def refused(spec, **kwargs):
        with pytest.raises(BmtptError) as excinfo:
            resolve_init(spec, runner, prompt_length=None, seed=SEED, target=target, **kwargs)
        message = str(excinfo.value)
        assert "\n" not in message
        return message

    assert "run `bmtpt source --per-task" in refused(f"retrieve:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    assert "holds no bmtpt prompts files" in refused(f"retrieve:{tmp_path / 'empty'}")
    (tmp_path / "wide").mkdir()
    _write(tmp_path / "wide", "demo_topic", torch.randn(LENGTH, 32), d_model=32)
    message = refused(f"retrieve:{tmp_path / 'wide'}")
    assert "demo_topic.safetensors" in message and "d_model=32" in message and "--model" in message
    (tmp_path / "own").mkdir()
    _write(tmp_path / "own", "demo_nli", torch.randn(LENGTH, 64))
    assert "only the target task's own prompt" in refused(f"retrieve:{tmp_path / 'own'}")
    assert "needs a directory" in refused("retrieve:")
    (tmp_path / "short").mkdir()
    _write(tmp_path / "short", "demo_topic", torch.randn(LENGTH, 64))
    assert "--prompt-length 6" in refused(f"retrieve:{tmp_path / 'short'}", required_length=6)
    with pytest.raises(BmtptError, match="needs the target task's examples .* use it with bmtpt adapt"):
        resolve_init(f"retrieve:{tmp_path / 'short'}", runner, prompt_length=None, seed=SEED)
