"""Batching: padded batches, or several samples packed into one row.

Packed rows restart position ids at every sample and carry a block-diagonal causal mask (an
additive [B, 1, L, L] float mask, which transformers' SDPA/eager paths use as given); on GPU with
flash-attention the position ids alone mark the boundaries. Each sample's first label is masked so
no token is trained across a boundary.
"""
from typing import List, Optional

import torch

from .loss_weights import loss_weights
from .sample_encoding import IGNORE_INDEX


def _weighted(batch: dict, loss_reduction: str, sample_lengths=None) -> dict:
    """The batch with `loss_weight` (data/loss_weights.py) unless the reduction is the plain token mean."""
    if loss_reduction != 'token':
        batch['loss_weight'] = loss_weights(batch['labels'], loss_reduction, sample_lengths)
    return batch


def pad_rows(ids: List[torch.Tensor], labels: List[torch.Tensor], pad_token_id: int) -> dict:
    """Rows right-padded to the longest: input_ids, labels (-100 on the padding), attention_mask."""
    length = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), length), pad_token_id, dtype=torch.long)
    label_ids = torch.full((len(ids), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, (row, row_labels) in enumerate(zip(ids, labels)):
        input_ids[i, :len(row)], label_ids[i, :len(row)], attention_mask[i, :len(row)] = row, row_labels, 1
    return {'input_ids': input_ids, 'labels': label_ids, 'attention_mask': attention_mask}


def pad_collate(samples: List[dict], pad_token_id: int, loss_reduction: str = 'token') -> dict:
    rows = pad_rows([s['input_ids'] for s in samples], [s['labels'] for s in samples], pad_token_id)
    return _weighted({**rows, **concat_images(samples)}, loss_reduction)


def concat_images(samples: List[dict]) -> dict:
    """The samples' tiles, flags and image sizes, concatenated in sample order."""
    out = {key: torch.cat([s[key] for s in samples]) for key in ('pixel_values', 'image_flags')}
    if all('image_sizes' in s for s in samples):
        out['image_sizes'] = torch.cat([s['image_sizes'] for s in samples])
    return out


def block_causal_mask(lengths: List[int], total: int, dtype=torch.float32) -> torch.Tensor:
    """[1, 1, total, total] additive mask: causal inside each sample, nothing across samples."""
    segment = torch.full((total,), -1, dtype=torch.long)
    start = 0
    for i, n in enumerate(lengths):
        segment[start:start + n] = i
        start += n
    causal = torch.ones(total, total, dtype=torch.bool).tril()
    allowed = causal & (segment[:, None] == segment[None, :]) & (segment[:, None] >= 0)
    allowed |= torch.eye(total, dtype=torch.bool)  # padding rows attend to themselves: finite softmax
    mask = torch.zeros(total, total, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


def pack_collate(samples: List[dict], pad_token_id: int, pad_to: Optional[int] = None,
                 loss_reduction: str = 'token') -> dict:
    """All samples in one row (the caller groups samples to fit its max length)."""
    lengths = [len(s['input_ids']) for s in samples]
    total = max(sum(lengths), pad_to or 0)
    input_ids = torch.full((1, total), pad_token_id, dtype=torch.long)
    labels = torch.full((1, total), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((1, total), dtype=torch.long)
    start = 0
    for sample, n in zip(samples, lengths):
        input_ids[0, start:start + n] = sample['input_ids']
        labels[0, start:start + n] = sample['labels']
        labels[0, start] = IGNORE_INDEX
        position_ids[0, start:start + n] = torch.arange(n)
        start += n
    return _weighted({'input_ids': input_ids, 'labels': labels, 'position_ids': position_ids,
                      'attention_mask': block_causal_mask(lengths, total), 'sample_lengths': lengths,
                      **concat_images(samples)}, loss_reduction, lengths)


def greedy_pack(lengths: List[int], max_length: int) -> List[List[int]]:
    """Group sample indices (in order) into packs whose total length fits max_length."""
    packs, current, used = [], [], 0
    for index, n in enumerate(lengths):
        if current and used + n > max_length:
            packs.append(current)
            current, used = [], 0
        current.append(index)
        used += n
    if current:
        packs.append(current)
    return packs
