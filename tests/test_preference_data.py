"""Preference pairs (vlmtune/preference/data.py, logps.py): official rows read and rejected with reasons; the summed
chosen / rejected log-probs equal a direct computation from the same model's logits (InternVL with Qwen2 and
InternLM2, LLaVA), the batch right-padded; sharing each pair's image embedding gives the loss and gradients of the
official repeated-tiles path."""
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vlmtune.data.collate import pad_collate
from vlmtune.formats import data_spec_for_folder, load
from vlmtune.preference.data import PreferenceDataset, preference_collate
from vlmtune.preference.logps import sequence_logps
from vlmtune.preference.losses import MPO, RunningMean, preference_loss
from vlmtune.tiny import make_tiny_llava_folder

GOOD = [{'image': 'red.png', 'question': 'What colour is it?', 'chosen': 'It is red.', 'rejected': 'Blue, I think.'},
        {'question': 'Say hello.', 'chosen': 'Hello there, friend!', 'rejected': 'No.', 'system_prompt': 'Be kind.'},
        {'image': ['red.png', 'blue.png'], 'question': 'Image-1: <image>\nImage-2: <image>\nSame colour?',
         'chosen': 'No, they differ.', 'rejected': 'Yes.'}]
BAD = [({'image': 'red.png', 'question': 'Q', 'chosen': 'same', 'rejected': 'same'}, 'nothing to prefer'),
       ({'image': 'red.png', 'question': 'Q', 'chosen': '', 'rejected': 'x'}, "'chosen' is missing or empty"),
       ({'image': 'red.png', 'chosen': 'a', 'rejected': 'b'}, "'question' is missing or empty"),
       ({'video': 'v.mp4', 'question': 'Q', 'chosen': 'a', 'rejected': 'b'}, 'video preference rows'),
       ({'image': 'red.png', 'question': '<image>\n<image>\nQ', 'chosen': 'a', 'rejected': 'b'}, '2 <image> tag(s)'),
       ({'image': 'red.png', 'question': 'Q ' * 400, 'chosen': 'a', 'rejected': 'b'}, 'exceed max_length')]


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def write_pairs(root, rows):
    for colour in ('red', 'blue'):
        Image.new('RGB', (70, 50), colour).save(root / f'{colour}.png')
    path = root / 'pairs.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path


@pytest.fixture(scope='module')
def folders(tiny_folder, tmp_path_factory):
    return {'internvl-qwen2': tiny_folder(), 'internvl-internlm2': tiny_folder('internlm2', '6b'),
            'llava': make_tiny_llava_folder(tmp_path_factory.mktemp('llava') / 'model')}


def test_pairs_are_read_or_rejected_with_the_reason(tmp_path, folders):
    path = write_pairs(tmp_path, GOOD + [row for row, _ in BAD])
    dataset = PreferenceDataset(path, tmp_path, data_spec_for_folder(folders['internvl-qwen2'], 2, 400))
    assert len(dataset) == 3
    reasons = {r['row']: r['reason'] for r in dataset.rejects}
    assert sorted(reasons) == list(range(4, 4 + len(BAD)))
    for row, (_, expected) in enumerate(BAD, 4):
        assert expected in reasons[row], (row, reasons[row])
    first = dataset[0]   # one set of tiles for both sides; the prompts are the same up to the answer
    chosen, rejected = first['chosen_input_ids'], first['rejected_input_ids']
    start = int((first['chosen_labels'] != -100).nonzero()[0])
    assert torch.equal(chosen[:start], rejected[:start]) and first['image_flags'].tolist() == [1] * len(first['image_flags'])


@pytest.mark.parametrize('name', ['internvl-qwen2', 'internvl-internlm2', 'llava'])
def test_summed_logps_equal_the_direct_computation(tmp_path, folders, name):
    folder = folders[name]
    path = write_pairs(tmp_path, GOOD)
    dataset = PreferenceDataset(path, tmp_path, data_spec_for_folder(folder, None if name == 'llava' else 2, 400))
    model, tokenizer = load(folder)
    model.eval()
    samples = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        chosen, rejected, nll = sequence_logps(model, preference_collate(samples, pad_id(tokenizer)))
        direct, tokens = {'chosen': [], 'rejected': []}, []
        for sample in samples:   # each side alone, unpadded, through the model's own forward
            for side in ('chosen', 'rejected'):
                one = {'input_ids': sample[f'{side}_input_ids'], 'labels': sample[f'{side}_labels'],
                       'pixel_values': sample['pixel_values'], 'image_flags': sample['image_flags'],
                       'image_sizes': sample['image_sizes']}
                batch = pad_collate([one], pad_id(tokenizer))
                batch.pop('labels')
                logits = model(**batch).logits[0, :-1].float()
                labels = sample[f'{side}_labels'][1:]
                trained = labels != -100
                picked = F.log_softmax(logits, -1)[trained].gather(1, labels[trained][:, None])[:, 0]
                direct[side].append(picked.sum())
                if side == 'chosen':
                    tokens.append(picked)
    assert torch.allclose(chosen, torch.stack(direct['chosen']), atol=2e-5), (chosen, direct['chosen'])
    assert torch.allclose(rejected, torch.stack(direct['rejected']), atol=2e-5)
    assert nll.item() == pytest.approx(-torch.cat(tokens).mean().item(), abs=1e-5)
    left = left_padded(preference_collate(samples, pad_id(tokenizer)))
    assert not torch.equal(left['attention_mask'][:, 0], torch.ones_like(left['attention_mask'][:, 0]))
    with torch.no_grad():
        left_chosen, left_rejected, left_nll = sequence_logps(model, left)
    assert torch.allclose(left_chosen, chosen, atol=2e-5) and torch.allclose(left_rejected, rejected, atol=2e-5)
    assert left_nll.item() == pytest.approx(nll.item(), abs=1e-5)


def left_padded(batch):
    """The same rows with their padding moved to the left."""
    out = dict(batch)
    for key in ('input_ids', 'labels', 'attention_mask'):
        rows = []
        for row, mask in zip(batch[key], batch['attention_mask']):
            pad = int((mask == 0).sum())
            rows.append(torch.roll(row, pad))
        out[key] = torch.stack(rows)
    return out


def test_shared_image_embeddings_give_the_repeated_tiles_loss_and_gradients(tmp_path, folders):
    path = write_pairs(tmp_path, GOOD)
    dataset = PreferenceDataset(path, tmp_path, data_spec_for_folder(folders['internvl-qwen2'], 2, 400))
    model, tokenizer = load(folders['internvl-qwen2'])
    model.eval()   # no dropout: both paths see the same network
    batch = preference_collate([dataset[i] for i in range(len(dataset))], pad_id(tokenizer))
    reference = (torch.tensor([-30.0, -20.0, -25.0]), torch.tensor([-28.0, -22.0, -21.0]))
    results = []
    for share in (True, False):
        model.zero_grad()
        chosen, rejected, nll = sequence_logps(model, batch, share_images=share)
        loss, _ = preference_loss(MPO, chosen, rejected, *reference, running=RunningMean(), rpo_alpha=1.0, nll=nll)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (shared_loss, shared_grads), (repeated_loss, repeated_grads) = results
    assert torch.allclose(shared_loss, repeated_loss, atol=1e-6)
    assert shared_grads.keys() == repeated_grads.keys() and any('vision_tower' in n for n in shared_grads)
    for name, grad in shared_grads.items():
        assert torch.allclose(grad, repeated_grads[name], atol=1e-6), name


def test_a_lora_reference_by_disabled_adapters_equals_a_frozen_copy(tmp_path, folders):
    """The reference of a LoRA run is the model with its adapters off: the same log-probs as a second, frozen copy of
    the checkpoint, after the adapters have moved away from zero."""
    from vlmtune.engine.preference_model import PreferenceModel
    folder = folders['internvl-qwen2']
    path = write_pairs(tmp_path, GOOD)
    dataset = PreferenceDataset(path, tmp_path, data_spec_for_folder(folder, 2, 400))
    batch = preference_collate([dataset[i] for i in range(len(dataset))], 0)
    runs = {kind: PreferenceModel(checkpoint=str(folder), vision_tower='frozen', connector='frozen', llm='lora',
                                  lora=dict(r=4, alpha=8, dropout=0.0), dtype='fp32', gradient_checkpointing=False,
                                  reference=kind) for kind in ('adapters', 'copy')}
    for run in runs.values():   # move the adapters: the policy is no longer the reference
        with torch.no_grad():
            for name, param in run.model.named_parameters():
                if 'lora_B' in name:
                    param.fill_(0.05)
    adapters, copy = (runs[k].reference_logps(batch, mean=False) for k in ('adapters', 'copy'))
    policy = sequence_logps(runs['adapters'].model, batch)
    assert all(torch.allclose(a, c, atol=1e-5) for a, c in zip(adapters, copy))
    assert not torch.allclose(policy[0], adapters[0], atol=1e-3)
    assert runs['copy']._reference and not runs['adapters']._reference   # the adapters way keeps no second copy


def test_data_check_pairs(tmp_path, folders):
    import subprocess
    import sys
    path = write_pairs(tmp_path, GOOD + [row for row, _ in BAD])
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'check', str(path), '--images', str(tmp_path),
                           '--pairs', '--model', str(folders['internvl-qwen2']), '--max-length', '400',
                           '--max-tiles', '2', '--quiet'], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rejects = [json.loads(line) for line in (tmp_path / 'pairs.rejects.jsonl').read_text().splitlines()]
    assert [(r['row'], r['kind']) for r in rejects] == [(4, 'bad_pair'), (5, 'bad_pair'), (6, 'bad_pair'),
                                                        (7, 'bad_pair'), (8, 'image_tag_mismatch'), (9, 'too_long')]
    assert 'nothing to prefer' in rejects[0]['reason']
    kept = [json.loads(line) for line in (tmp_path / 'pairs.kept.jsonl').read_text().splitlines()]
    assert kept == GOOD   # kept rows are written as they came
