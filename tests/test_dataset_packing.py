"""The lazy dataset, its length cache, padding collate and sequence packing."""
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vlmtune.data.collate import block_causal_mask, greedy_pack, pack_collate, pad_collate
from vlmtune.data.dataset import ConversationDataset
from vlmtune.model.packed_attention import _last, block_segments, enable_packed_attention
from vlmtune.tiny import TinySpec, build_tiny_model


def write_dataset(folder, rows):
    images = folder / 'images'
    images.mkdir(parents=True, exist_ok=True)
    for name, size, colour in [('a.png', (56, 56), 'red'), ('b.png', (120, 56), 'blue'), ('c.png', (40, 90), 'green')]:
        Image.new('RGB', size, colour).save(images / name)
    path = folder / 'data.jsonl'
    path.write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in rows) + '\n', encoding='utf-8')
    return path, images


ROWS = [
    {'id': '1', 'image': 'a.png', 'conversations': [{'from': 'human', 'value': 'What colour?'}, {'from': 'gpt', 'value': 'red'}]},
    {'id': '2', 'image': 'b.png', 'conversations': [{'from': 'human', 'value': '<image>\nWhat colour is the shape?'},
                                                    {'from': 'gpt', 'value': 'It is blue.'},
                                                    {'from': 'human', 'value': 'Sure?'}, {'from': 'gpt', 'value': 'Yes.'}]},
    {'id': '3', 'image': ['a.png', 'c.png'], 'conversations': [{'from': 'human', 'value': '<image>\n<image>\nSame?'},
                                                               {'from': 'gpt', 'value': 'No.'}]},
    {'id': '4', 'conversations': [{'from': 'human', 'value': 'Say hi.'}, {'from': 'gpt', 'value': 'hi'}]},
    {'id': '5', 'image': 'missing.png', 'conversations': [{'from': 'human', 'value': 'x'}, {'from': 'gpt', 'value': 'y'}]},
]


def data_spec(model, tok):
    """The model's own data spec, at most 4 tiles per image."""
    return model.spec.override({'image_processor': {'max_tiles': 4}}).data_spec(tok)


@pytest.fixture(scope='module')
def tiny():
    return build_tiny_model(TinySpec(llm='qwen2'))


def make_dataset(tmp_path, tiny, **kwargs):
    model, tok = tiny
    path, images = tmp_path / 'data.jsonl', tmp_path / 'images'
    if not path.exists():
        write_dataset(tmp_path, ROWS)
    return ConversationDataset(path, images, data_spec(model, tok), progress=False, **kwargs)


def test_dataset_samples_lengths_and_rejects(tmp_path, tiny):
    ds = make_dataset(tmp_path, tiny)
    assert len(ds) == 4 and ds.num_rows() == 5
    assert [r['row'] for r in ds.rejects] == [5] and 'missing.png' in ds.rejects[0]['reason']
    for i in range(len(ds)):
        sample = ds[i]
        assert len(sample['input_ids']) == ds.lengths[i]  # cached length = real length
        n_context = int((sample['input_ids'] == tiny[1].convert_tokens_to_ids('<IMG_CONTEXT>')).sum())
        assert n_context == 4 * int(sample['image_flags'].sum())
    # b.png is 120x56 -> a 2x1 grid (+ thumbnail) = 3 tiles; the two-image row gets max 4 // 2 = 2 tiles each.
    assert ds[1]['pixel_values'].shape == (3, 3, 56, 56)
    assert ds[2]['pixel_values'].shape[0] == 1 + 3
    text_only = ds[3]
    assert text_only['image_flags'].tolist() == [0] and text_only['pixel_values'].shape == (1, 3, 56, 56)
    assert torch.allclose(text_only['pixel_values'][:, 0].max(), text_only['pixel_values'][:, 0].min())  # white


def test_length_cache_is_reused_and_invalidated(tmp_path, tiny, monkeypatch):
    first = make_dataset(tmp_path, tiny)
    assert first.cache_path.exists()
    calls = []
    monkeypatch.setattr(ConversationDataset, 'sample_length', lambda self, row: calls.append(row) or 1)
    second = make_dataset(tmp_path, tiny)
    assert calls == [] and second.lengths == first.lengths
    with open(tmp_path / 'data.jsonl', 'a') as handle:  # the file changed: lengths are recomputed
        handle.write(json.dumps(ROWS[0] | {'id': '6'}) + '\n')
    make_dataset(tmp_path, tiny)
    assert len(calls) == 6


def test_pad_collate(tmp_path, tiny):
    ds = make_dataset(tmp_path, tiny)
    batch = pad_collate([ds[0], ds[1]], pad_token_id=tiny[1].pad_token_id)
    n0, n1 = ds.lengths[0], ds.lengths[1]
    assert batch['input_ids'].shape == (2, max(n0, n1))
    assert batch['attention_mask'].sum(1).tolist() == [n0, n1]
    assert (batch['labels'][0, n0:] == -100).all() and batch['pixel_values'].shape[0] == 1 + 3


def test_block_causal_mask():
    mask = block_causal_mask([2, 3], 6)[0, 0]
    allowed = (mask == 0).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0],
                       [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1]]


def test_greedy_pack():
    assert greedy_pack([5, 4, 3, 9, 1], 9) == [[0, 1], [2], [3], [4]]


def per_token_loss(logits, labels):
    return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=-100,
                           reduction='none')


@pytest.mark.parametrize('llm,packed_attention', [('qwen2', False), ('internlm2', False), ('qwen2', True),
                                                   ('llama', True), ('internlm2', True)])
def test_packed_batch_gives_same_per_sample_loss(tmp_path, llm, packed_attention):
    model, tok = build_tiny_model(TinySpec(llm=llm))
    if packed_attention:  # per-sample SDPA instead of the dense block mask
        assert enable_packed_attention(model.llm)
    path, images = write_dataset(tmp_path, ROWS[:4])
    ds = ConversationDataset(path, images, data_spec(model, tok), progress=False)
    samples = [ds[i] for i in range(len(ds))]
    expected = []
    with torch.no_grad():
        for s in samples:
            out = model(pixel_values=s['pixel_values'], input_ids=s['input_ids'][None], image_flags=s['image_flags'],
                        labels=s['labels'][None])
            expected.append(out.loss)
        packed = pack_collate(samples, tok.pad_token_id, pad_to=sum(len(s['input_ids']) for s in samples) + 5)
        out = model(pixel_values=packed['pixel_values'], input_ids=packed['input_ids'],
                    attention_mask=packed['attention_mask'], position_ids=packed['position_ids'],
                    image_flags=packed['image_flags'], labels=packed['labels'])
    token_loss = per_token_loss(out.logits, packed['labels'])[0]
    trained = packed['labels'][0, 1:] != -100
    start = 0
    for n, ref in zip(packed['sample_lengths'], expected):
        span = slice(max(start - 1, 0), start + n - 1)  # shifted positions predicting this sample's tokens
        got = token_loss[span][trained[span]].mean()
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
        start += n
    all_trained = torch.cat([s['labels'][1:] for s in samples])
    assert int(trained.sum()) == int((all_trained != -100).sum())
    if packed_attention:  # the per-sample path ran: 4 samples + 5 one-token padding segments
        assert _last['segments'] is not None and len(_last['segments']) == 4 + 5


def test_packed_attention_gradients_match_dense_mask(tmp_path):
    path, images = write_dataset(tmp_path, ROWS[:4])
    grads = []
    for packed_attention in (False, True):
        model, tok = build_tiny_model(TinySpec(llm='qwen2'))
        if packed_attention:
            assert enable_packed_attention(model.llm)
        ds = ConversationDataset(path, images, data_spec(model, tok), progress=False)
        packed = pack_collate([ds[i] for i in range(len(ds))], tok.pad_token_id)
        packed.pop('sample_lengths')
        model(**packed).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_block_segments_only_for_block_causal_masks():
    assert block_segments(block_causal_mask([3, 2], 6)) == [(0, 3), (3, 5), (5, 6)]
    assert block_segments(block_causal_mask([2, 2], 4) == 0) == [(0, 2), (2, 4)]  # bool: True = may attend
    assert block_segments(torch.ones(1, 1, 4, 4, dtype=torch.bool).triu()) is None  # looks ahead: not causal
    plain_causal = torch.zeros(1, 1, 4, 4).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), -1e9)
    assert block_segments(plain_causal) == [(0, 4)]
    full = torch.zeros(1, 1, 4, 4)  # bidirectional: not causal, so not ours to split
    assert block_segments(full) is None
    assert block_segments(torch.zeros(2, 1, 4, 4)) is None


def test_packing_is_refused_for_an_llm_whose_entry_says_it_computes_no_packed_rows(tmp_path, monkeypatch):
    """An LLM entry with packing=False (OPT: its attention takes no 4-D block mask) stops a packed recipe
    before training, naming the setting to change; the same data trains unpacked."""
    import dataclasses
    from vlmtune.engine.data import build_train_dataset
    from vlmtune.model.llm import REGISTRY
    from vlmtune.tiny import make_tiny_folder
    folder = make_tiny_folder(tmp_path / 'model', TinySpec(llm='qwen2'))
    data, images = write_dataset(tmp_path, ROWS[:2])
    monkeypatch.setitem(REGISTRY._entries, 'qwen2', dataclasses.replace(REGISTRY.get('qwen2'), packing=False))
    with pytest.raises(ValueError, match='qwen2 LLM computes no packed rows.*packing=False'):
        build_train_dataset(folder, data, images, max_length=512, packing=True)
    assert len(build_train_dataset(folder, data, images, max_length=512, packing=False)) == 2
