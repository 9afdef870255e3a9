"""Preference pairs as the official InternVL MPO trainer reads them (internvl-training notes §5.1): a row is
`{"image": path | [paths] | absent, "question", "chosen", "rejected"[, "system_prompt"]}`, read through the same
files or meta files as supervised rows. The two conversations `[human: question, gpt: chosen]` and `[human:
question, gpt: rejected]` are encoded with the model's template exactly as supervised rows are (labels on the
answer only), and the row's tiles are made once for both.

A pair that cannot train is rejected with its reason, never truncated: an empty or missing question or answer,
chosen equal to rejected (nothing to prefer), an image-tag mismatch, either side over max_length. Video pairs are
refused (the official MPO code never loads them either).
"""
from typing import List

import torch

from ..data.collate import concat_images, pad_rows
from ..data.dataset import ConversationDataset, image_sizes
from ..data.rejects import SampleRejected



def pair_conversations(row: dict) -> tuple:
    """(chosen conversation, rejected conversation) of a preference row."""
    for key in ('question', 'chosen', 'rejected'):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise SampleRejected(f'{key!r} is missing or empty; a preference row has question, chosen and rejected')
    if row['chosen'].strip() == row['rejected'].strip():
        raise SampleRejected('chosen and rejected are the same answer: nothing to prefer')
    if row.get('video'):
        raise SampleRejected('video preference rows are not read (the official MPO trainer never loads them)')
    system = [{'from': 'system', 'value': row['system_prompt']}] if row.get('system_prompt') else []
    prompt = system + [{'from': 'human', 'value': row['question']}]
    return prompt + [{'from': 'gpt', 'value': row['chosen']}], prompt + [{'from': 'gpt', 'value': row['rejected']}]


def pair_rows(obj, number: int) -> list:
    """For `data check --pairs`: the pair's two conversation rows (an id from the row number when it has none)."""
    from ..data.check_rows import RowRejected
    if not isinstance(obj, dict):
        return [obj]
    try:
        chosen, rejected = pair_conversations(obj)
    except SampleRejected as exc:
        raise RowRejected('bad_pair', str(exc)) from None
    base = {k: v for k, v in obj.items() if k not in ('question', 'chosen', 'rejected', 'system_prompt')}
    base.setdefault('id', f'pair-{number}')
    return [dict(base, conversations=chosen), dict(base, conversations=rejected)]


class PreferenceDataset(ConversationDataset):
    """Items: chosen / rejected ids and labels, and one set of tiles for the pair."""

    def sample_length(self, row: dict) -> int:
        chosen, rejected = pair_conversations(row)
        return sum(self.spec.token_length(dict(row, conversations=c), self.image_root, self.spec.max_length)
                   for c in (chosen, rejected))

    def item(self, raw_index: int) -> dict:
        row = self.row(raw_index)
        chosen, rejected = pair_conversations(row)
        pixel_values, image_flags, sizes, layouts = self.pixels(row)
        sides = {}
        for name, conversation in (('chosen', chosen), ('rejected', rejected)):
            encoded = self.spec.encode(dict(row, conversations=conversation), layouts, self.spec.max_length)
            sides[f'{name}_input_ids'] = torch.tensor(encoded.input_ids)
            sides[f'{name}_labels'] = torch.tensor(encoded.labels)
        return {**sides, 'pixel_values': pixel_values, 'image_flags': image_flags, 'image_sizes': image_sizes(sizes)}


def preference_collate(samples: List[dict], pad_token_id: int = 0) -> dict:
    """One batch of 2B right-padded rows, the chosen halves first, then the rejected ones (the order of the official
    concatenated forward); each pair's tiles once (the model shares their embedding between the halves)."""
    sides = ('chosen', 'rejected')
    rows = pad_rows([s[f'{side}_input_ids'] for side in sides for s in samples],
                    [s[f'{side}_labels'] for side in sides for s in samples], pad_token_id)
    return {**rows, **concat_images(samples)}
