"""The official loss reductions (data/loss_weights.py; InternVL's `len2weight`): the worked example of the training
notes by hand, then through the model on a 2-sample batch, padded and packed, against per-token cross entropies
computed here from the model's own logits; the recipe defaults are the official scripts' per family."""
import math

import pytest
import torch
import torch.nn.functional as F

from vlmtune.data.collate import pack_collate, pad_collate
from vlmtune.data.loss_weights import REDUCTIONS, loss_weights, weighted_cross_entropy
from vlmtune.engine.data import vlm_collate
from vlmtune.tiny import TinySpec, build_tiny_model

# Sample A: 4 supervised tokens, CE 2 each (sum 8); sample B: 16, CE 1 each (sum 16).
WORKED = {'token': 24 / 20, 'sample': (8 / 4 + 16 / 16) / 2, 'square': (8 / 2 + 16 / 4) / (2 + 4)}


def worked_labels(packed: bool):
    """Labels of A (1 prompt token + 4 answer tokens) and B (1 + 16), in two rows or one packed row."""
    a, b = torch.tensor([-100] + [7] * 4), torch.tensor([-100] + [7] * 16)
    if packed:
        return torch.cat([a, b])[None], [5, 17]
    return torch.stack([F.pad(a, (0, 12), value=-100), b]), None


@pytest.mark.parametrize('packed', [False, True])
@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_the_worked_example(reduction, packed):
    labels, lengths = worked_labels(packed)
    ce = torch.where(labels == -100, 0.0, 1.0)
    ce[0, :5] *= 2   # sample A's tokens (first in either layout)
    supervised = labels != -100
    weights = loss_weights(labels, reduction, lengths) if reduction != 'token' else None
    loss = weighted_cross_entropy(ce[supervised], None if weights is None else weights[supervised])
    assert loss.item() == pytest.approx(WORKED[reduction], abs=1e-6)
    assert WORKED['token'] == 1.2 and WORKED['sample'] == 1.5 and WORKED['square'] == pytest.approx(4 / 3)


@pytest.fixture(scope='module')
def tiny():
    model, tokenizer = build_tiny_model(TinySpec())
    model.eval()
    return model, tokenizer


def two_samples(model):
    """A (one image tile, 3 answer tokens) and B (text only, 12 answer tokens)."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for i, (prompt, answer) in enumerate([(4 + model.num_image_token, 3), (5, 12)]):
        ids = torch.randint(3, 300, (prompt + answer,), generator=gen)
        ids[ids == model.img_context_token_id] = 3
        if i == 0:
            ids[2:2 + model.num_image_token] = model.img_context_token_id
        labels = ids.clone()
        labels[:prompt] = -100
        samples.append({'input_ids': ids, 'labels': labels, 'image_flags': torch.tensor([1 - i]),
                        'pixel_values': torch.randn(1, 3, 56, 56, generator=gen) if i == 0 else torch.zeros(1, 3, 56, 56)})
    return samples


def by_hand(per_sample_ce, reduction):
    """sum_i w(n_i) * sum CE_i / sum_i w(n_i) * n_i, from each sample's per-token CE."""
    w = {'token': lambda n: 1.0, 'sample': lambda n: 1 / n, 'square': lambda n: 1 / math.sqrt(n)}[reduction]
    return (sum(w(len(ce)) * sum(ce) for ce in per_sample_ce) / sum(w(len(ce)) * len(ce) for ce in per_sample_ce))


@pytest.mark.parametrize('packed', [False, True])
def test_the_model_reduces_as_by_hand(tiny, packed):
    model, tokenizer = tiny
    samples = two_samples(model)
    per_sample_ce = []
    with torch.no_grad():
        for sample in samples:  # each sample alone: its tokens' CE from the model's logits
            batch = pad_collate([sample], tokenizer.pad_token_id)
            logits = model(**batch).logits[0, :-1]
            targets = batch['labels'][0, 1:]
            trained = targets != -100
            per_sample_ce.append(F.cross_entropy(logits[trained].float(), targets[trained], reduction='none').tolist())
    assert [len(ce) for ce in per_sample_ce] == [3, 12]
    losses = {}
    for reduction in REDUCTIONS:
        batch = vlm_collate([samples] if packed else samples, tokenizer.pad_token_id, reduction)['data']
        assert ('loss_weight' in batch) == (reduction != 'token')
        batch.pop('sample_lengths', None)
        with torch.no_grad():
            fast = model(**batch, return_logits=False).loss.item()   # the training path (labelled positions only)
            full = model(**batch).loss.item()                        # the logits path
        losses[reduction] = fast
        assert fast == pytest.approx(by_hand(per_sample_ce, reduction), rel=1e-5), reduction
        assert full == pytest.approx(fast, rel=1e-5)
    assert len({round(v, 6) for v in losses.values()}) == 3, losses   # the three really differ here


def test_an_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="loss_reduction 'mean' is not one of"):
        vlm_collate([{}], 0, 'mean')


def test_recipes_default_to_the_official_scripts():
    """InternVL 2 / 2.5 / 3 2nd_finetune scripts: the token mean; InternVL3.5's SFT scripts: square."""
    from vlmtune.engine.launch import load_recipe
    for name, expected in [('internvl2_2b_lora', 'token'), ('internvl2_5_8b_full', 'token'),
                           ('internvl3_8b_lora', 'token'), ('internvl3_5_8b_lora', 'square'),
                           ('internvl3_5_30b_a3b_full', 'square'), ('llava15_7b_lora', 'token')]:
        cfg = load_recipe(name)
        assert cfg.train_dataloader.collate_fn.get('loss_reduction', 'token') == expected, name
