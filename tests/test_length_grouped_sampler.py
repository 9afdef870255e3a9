"""LengthGroupedSampler: every sample once per pass, batches of length neighbours, a random order of
runs (no long-to-short curriculum), the same stream for every world size (ranks take every W-th)."""
import itertools
import random

import pytest
from mmengine.dataset import InfiniteSampler

from vlmtune.engine.sampler import LengthGroupedSampler


class Lengths:
    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)


def stream(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def batch_spread(indices, lengths, batch):
    """Mean (max - min) length inside each batch of `batch` consecutive indices."""
    spans = [indices[k:k + batch] for k in range(0, len(indices) - batch + 1, batch)]
    return sum(max(lengths[i] for i in s) - min(lengths[i] for i in s) for s in spans) / len(spans)


def test_each_pass_holds_every_sample_once_in_runs_of_length_neighbours():
    rng = random.Random(0)
    lengths = [rng.choice([300, 800, 1060, 1300, 1830, 3370]) + rng.randint(0, 5) for _ in range(100)]
    sampler = LengthGroupedSampler(Lengths(lengths), seed=0, group_size=40, run=4)
    passes = stream(sampler, 200)
    first, second = passes[:100], passes[100:]
    assert sorted(first) == list(range(100)) and sorted(second) == list(range(100)) and first != second
    for k in range(0, 80, 4):  # whole groups of 40: runs of 4 are aligned; each run runs long to short
        run = [lengths[i] for i in first[k:k + 4]]
        assert run == sorted(run, reverse=True), (k, run)
    plain = stream(InfiniteSampler(Lengths(lengths), seed=0), 100)
    assert batch_spread(first, lengths, 4) < 0.5 * batch_spread(plain, lengths, 4)
    starts = [lengths[first[k]] for k in range(0, 40, 4)]  # the runs of the first group come in random order
    assert starts != sorted(starts, reverse=True)


def test_the_stream_is_seeded_and_ranks_deal_it_as_infinite_sampler_does(monkeypatch):
    lengths = list(range(50))
    one = stream(LengthGroupedSampler(Lengths(lengths), seed=3), 100)
    assert one == stream(LengthGroupedSampler(Lengths(lengths), seed=3), 100)
    assert one != stream(LengthGroupedSampler(Lengths(lengths), seed=4), 100)
    import mmengine.dataset.sampler as mm_sampler
    monkeypatch.setattr(mm_sampler, 'get_dist_info', lambda: (1, 2))
    assert stream(LengthGroupedSampler(Lengths(lengths), seed=3), 50) == one[1::2]


def test_without_shuffle_the_file_order_and_without_lengths_a_clear_error():
    assert stream(LengthGroupedSampler(Lengths([5, 1, 3]), shuffle=False, seed=0), 6) == [0, 1, 2, 0, 1, 2]

    class NoLengths:
        def __len__(self):
            return 3
    with pytest.raises(ValueError, match='no per-sample `lengths`; use InfiniteSampler'):
        LengthGroupedSampler(NoLengths(), seed=0)
