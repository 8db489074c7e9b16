"""An export loaded by PEFT itself gives bmtpt's numbers: the same loss, within 1e-5.

PEFT builds the prompt its own way (`prompt_embeddings`, and for multitask `prefix_task_cols[k] @
prefix_task_rows[k]` times it) and feeds the model through its own forward; bmtpt's side is the
runner with `artifact.prompt(task)` = W ⊙ (a_k b_kᵀ). Each side gets its own copy of the `tiny` model.
"""

from __future__ import annotations

import pytest
import torch

from bmtpt_cli.artifacts import load_prompts
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.export.run import run_export
from bmtpt_cli.runner.model import load_frozen_t5
from exporthelpers import TASKS, export_job, write_prompts
from reference import batch_loss

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("round-trip") / "prompts.safetensors"
    write_prompts(path)
    return path


@pytest.fixture(scope="module")
def examples():
    """Four train examples per task, of different lengths (so inputs and labels are padded)."""
    return {task.name: task.examples("train")[:4] for task in resolve_tasks(list(TASKS))}


def _peft_model(directory):
    model, _ = load_frozen_t5("tiny")  # a copy of its own: PEFT wraps it
    return peft.PeftModel.from_pretrained(model, str(directory)).eval()


def _losses(runner, peft_model, prompts, batch, **peft_inputs):
    """(bmtpt's token-mean loss, PEFT's loss) of one batch; `prompts` `(B, l, d)`, one per example."""
    with torch.no_grad():
        ours = batch_loss(runner, prompts, batch).item()
        theirs = peft_model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels, **peft_inputs
        ).loss.item()
    return ours, theirs


@pytest.mark.parametrize("task", TASKS)
def test_single_task_adapter_gives_bmtpts_loss(runner, artifact, examples, tmp_path, task):
    run_export(export_job(artifact, tmp_path / "export"))
    prompts = load_prompts(artifact)
    model = _peft_model(tmp_path / "export" / task)
    batch = runner.encode([e.source for e in examples[task]], [e.target for e in examples[task]])
    prompt = prompts.prompt(task).expand(len(batch), -1, -1)  # (B, l, d)

    ours, theirs = _losses(runner, model, prompt, batch)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
    other = next(t for t in TASKS if t != task)  # and the loss does depend on which prompt was exported
    assert abs(_losses(runner, model, prompts.prompt(other).expand(len(batch), -1, -1), batch)[0] - theirs) > 1e-3



def test_multitask_adapter_gives_bmtpts_loss_with_task_ids(runner, artifact, examples, tmp_path):
    run_export(export_job(artifact, tmp_path / "export", multitask=True, tasks=["demo_rte", "demo_review"]))
    prompts = load_prompts(artifact)
    model = _peft_model(tmp_path / "export")
    mixed = [(task, examples[task][i]) for i in range(4) for task in TASKS]  # the tasks interleaved
    batch = runner.encode([e.source for _, e in mixed], [e.target for _, e in mixed])
    ids = {"demo_rte": 0, "demo_review": 1}  # the order --tasks gave
    task_ids = torch.tensor([ids[task] for task, _ in mixed])
    prompt = torch.stack([prompts.prompt(task) for task, _ in mixed])  # (B, l, d), each example its own task's

    ours, theirs = _losses(runner, model, prompt, batch, task_ids=task_ids)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
    swapped = _losses(runner, model, prompt, batch, task_ids=1 - task_ids)[1]
    assert abs(swapped - ours) > 1e-3  # the ids do select the tasks' prompts
