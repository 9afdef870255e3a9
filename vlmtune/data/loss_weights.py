"""The official InternVL loss reductions (its fine-tuning code's `len2weight` and `loss_reduction`): every supervised
token of a sample gets the weight w(n), n being the sample's supervised tokens (labels != -100), and the loss is
sum(w * CE) / sum(w) over the batch.

| reduction | w(n) | the loss is |
|---|---|---|
| token | 1 | the mean over all supervised tokens (long answers count more) |
| sample | 1 / n | the mean over samples of each sample's mean |
| square | 1 / sqrt(n) | between the two: sum_i (sum CE_i) / sqrt(n_i) / sum_i sqrt(n_i) |

A sample is a batch row, or one sample of a packed row. Officially the 3.0 code applies the reduction to packed rows
only (unpacked it falls back to the token mean) and the 3.5 code hard-codes square on unpacked rows; here the
recipe's choice holds for both. 'token' adds no weights: the loss stays the plain mean.
"""
import math
from typing import List, Optional

import torch

REDUCTIONS = ('token', 'sample', 'square')


def check_reduction(name: str) -> str:
    if name not in REDUCTIONS:
        raise ValueError(f'loss_reduction {name!r} is not one of {REDUCTIONS} (set it on the recipe\'s collate_fn)')
    return name


def len2weight(n: int, reduction: str) -> float:
    if n == 0:
        return 0.0
    return {'token': 1.0, 'sample': 1.0 / n, 'square': 1.0 / math.sqrt(n)}[check_reduction(reduction)]


def loss_weights(labels: torch.Tensor, reduction: str, sample_lengths: Optional[List[int]] = None) -> torch.Tensor:
    """[B, L] float weights beside `labels`: w(n) on each supervised token of a sample, 0 elsewhere. Samples are the
    rows, or, for a packed row (one row, sample_lengths given), its consecutive spans."""
    supervised = labels != -100
    weights = torch.zeros(labels.shape, dtype=torch.float32)
    spans = [(row, 0, labels.shape[1]) for row in range(labels.shape[0])]
    if sample_lengths is not None:
        starts = [sum(sample_lengths[:i]) for i in range(len(sample_lengths))]
        spans = [(0, start, start + n) for start, n in zip(starts, sample_lengths)]
    for row, start, end in spans:
        mask = supervised[row, start:end]
        weights[row, start:end][mask] = len2weight(int(mask.sum()), reduction)
    return weights


def weighted_cross_entropy(ce: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """sum(w * CE) / sum(w) over the supervised positions' unreduced CE; the plain mean without weights."""
    if weights is None:
        return ce.mean()
    weights = weights.to(ce.dtype)
    return (ce * weights).sum() / weights.sum()
