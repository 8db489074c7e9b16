"""Data parallelism's pieces: each process's share of a batch, sums, and who writes."""

from __future__ import annotations

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.distributed import SINGLE, Distributed, data_parallel, is_main_process, sum_gradients


def test_shards_partition_the_batch_in_order():
    items = list(range(7))
    shards = [Distributed(rank, 3).shard(items) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shards, [])) == items
    assert SINGLE.shard(items) == items and SINGLE.is_main and not SINGLE.enabled


def test_a_batch_smaller_than_the_world_is_refused_with_the_fix():
    with pytest.raises(BmtptError, match="--examples-per-task or --batch-size"):
        Distributed(0, 4).shard([1, 2])


def test_one_process_sums_nothing_and_keeps_untouched_gradients_none():
    tensor = torch.tensor([1.0, 2.0])
    assert SINGLE.sum(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    touched, untouched = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    touched.grad = torch.ones(2)
    sum_gradients(SINGLE, [touched, untouched])
    assert touched.grad.tolist() == [1.0, 1.0] and untouched.grad is None


def test_the_main_process_is_rank_zero(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


def test_without_a_launcher_data_parallel_is_one_process_on_the_given_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with data_parallel(torch.device("cpu")) as (dist, device):
        assert dist == SINGLE and device == torch.device("cpu")
