"""Batch drawing and k-shot subsets: determinism under a generator, distributions, errors."""

from collections import Counter

import pytest
import torch

from bmtpt_cli.data.sampling import kshot, mixed_batch, source_batch
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError


def _pool(name: str, n: int) -> list[TextExample]:
    return [TextExample(f"{name} x: {i}", "y", 0) for i in range(n)]


POOLS = {"a": _pool("a", 10), "b": _pool("b", 30), "c": _pool("c", 60), "d": _pool("d", 5)}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- source_batch


def test_source_batch_every_task_in_dict_order():
    batch = source_batch(POOLS, per_task=3, sample_tasks=None, generator=_gen(0))
    assert [name for name, _ in batch] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    assert all(example in POOLS[name] for name, example in batch)


def test_source_batch_paper_default_is_one_example_per_task():
    batch = source_batch(POOLS, per_task=1, sample_tasks=None, generator=_gen(0))
    assert [name for name, _ in batch] == list(POOLS)


def test_source_batch_same_seed_same_batch_other_seed_differs():
    draw = lambda seed: source_batch(POOLS, per_task=4, sample_tasks=2, generator=_gen(seed))
    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_source_batch_continues_from_a_restored_generator_state():
    generator = _gen(3)
    source_batch(POOLS, per_task=2, sample_tasks=2, generator=generator)
    state = generator.get_state()
    after = [source_batch(POOLS, per_task=2, sample_tasks=2, generator=generator) for _ in range(3)]
    restored = torch.Generator()
    restored.set_state(state)
    assert [source_batch(POOLS, per_task=2, sample_tasks=2, generator=restored) for _ in range(3)] == after


def test_sample_tasks_draws_distinct_tasks_uniformly():
    generator = _gen(0)
    counts = Counter()
    for _ in range(2000):
        batch = source_batch(POOLS, per_task=2, sample_tasks=2, generator=generator)
        names = [name for name, _ in batch]
        chosen = list(dict.fromkeys(names))
        assert len(chosen) == 2 and names == [chosen[0]] * 2 + [chosen[1]] * 2
        assert chosen == sorted(chosen, key=list(POOLS).index)  # dict order
        counts.update(chosen)
    # each task is chosen with probability 2/4: 1000 expected, sd ~ 22
    assert all(abs(c - 1000) < 100 for c in counts.values()), counts


def test_source_batch_examples_are_uniform_within_a_task():
    batch = source_batch({"d": POOLS["d"]}, per_task=5000, sample_tasks=None, generator=_gen(1))
    counts = Counter(example.source for _, example in batch)
    assert len(counts) == 5 and all(abs(c - 1000) < 120 for c in counts.values()), counts


@pytest.mark.parametrize("sample_tasks", [0, 5, -1])
def test_sample_tasks_out_of_range_is_an_error(sample_tasks):
    with pytest.raises(BmtptError, match=f"cannot sample {sample_tasks} of 4 .* from 1 to 4"):
        source_batch(POOLS, per_task=1, sample_tasks=sample_tasks, generator=_gen(0))


def test_source_batch_rejects_bad_inputs():
    with pytest.raises(BmtptError, match="at least 1, got 0"):
        source_batch(POOLS, per_task=0, sample_tasks=None, generator=_gen(0))
    with pytest.raises(BmtptError, match="no examples: e"):
        source_batch({**POOLS, "e": []}, per_task=1, sample_tasks=None, generator=_gen(0))
    with pytest.raises(BmtptError, match="no tasks"):
        source_batch({}, per_task=1, sample_tasks=None, generator=_gen(0))


# ---------------------------------------------------------------- mixed_batch


def _chi_square(counts: Counter, probabilities: dict[str, float], total: int) -> float:
    return sum((counts[k] - total * p) ** 2 / (total * p) for k, p in probabilities.items())


def test_mixed_batch_is_example_proportional():
    batch = mixed_batch(POOLS, batch_size=20000, generator=_gen(0))
    counts = Counter(name for name, _ in batch)
    sizes = {k: len(v) for k, v in POOLS.items()}
    expected = {k: n / sum(sizes.values()) for k, n in sizes.items()}
    # 3 degrees of freedom: P(chi2 > 16.27) = 0.001
    assert _chi_square(counts, expected, 20000) < 16.27, counts
    assert all(example in POOLS[name] for name, example in batch)


def test_mixed_batch_cap_limits_large_tasks():
    batch = mixed_batch(POOLS, batch_size=20000, generator=_gen(1), cap=20)
    counts = Counter(name for name, _ in batch)
    rates = {"a": 10, "b": 20, "c": 20, "d": 5}
    expected = {k: r / sum(rates.values()) for k, r in rates.items()}
    assert _chi_square(counts, expected, 20000) < 16.27, counts
    assert abs(counts["b"] - counts["c"]) < 600  # both capped at 20: equal rates


def test_mixed_batch_examples_uniform_within_task():
    batch = mixed_batch({"d": POOLS["d"]}, batch_size=5000, generator=_gen(2))
    counts = Counter(example.source for _, example in batch)
    assert len(counts) == 5 and all(abs(c - 1000) < 120 for c in counts.values()), counts


def test_mixed_batch_deterministic_per_seed_and_interleaved():
    draw = lambda seed: mixed_batch(POOLS, batch_size=32, generator=_gen(seed), cap=40)
    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
    names = [name for name, _ in draw(5)]
    assert names != sorted(names, key=list(POOLS).index)


def test_mixed_batch_rejects_bad_inputs():
    with pytest.raises(BmtptError, match="batch size"):
        mixed_batch(POOLS, batch_size=0, generator=_gen(0))
    with pytest.raises(BmtptError, match="cap"):
        mixed_batch(POOLS, batch_size=4, generator=_gen(0), cap=0)
    with pytest.raises(BmtptError, match="no examples: e"):
        mixed_batch({"e": []}, batch_size=4, generator=_gen(0))


# ---------------------------------------------------------------- kshot


def test_kshot_same_seed_same_subset_without_replacement():
    pool = _pool("p", 50)
    subset = kshot(pool, 16, seed=0)
    assert subset == kshot(pool, 16, seed=0)
    assert len(set(subset)) == 16 and set(subset) <= set(pool)
    assert set(kshot(pool, 16, seed=1)) != set(subset)


def test_kshot_all_examples_is_a_permutation():
    pool = _pool("p", 8)
    assert sorted(kshot(pool, 8, seed=3), key=pool.index) == pool


@pytest.mark.parametrize("k", [0, -2, 9])
def test_kshot_bad_k_names_k_and_the_count(k):
    with pytest.raises(BmtptError, match=rf"1 <= k <= 8 .*got k={k}"):
        kshot(_pool("p", 8), k, seed=0)
