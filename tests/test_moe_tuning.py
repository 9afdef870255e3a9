"""MoE-tuning end to end on a tiny InternVL (Qwen2 LLM): `vlmtune train moe_cpu` under ZeRO-2 upcycles the
dense folder and trains only experts and routers, logs the aux loss as its own scalar and writes the
expert-load report; `vlmtune convert` writes a Qwen2-MoE internvl folder that loads with vlmtune hidden
and gives the package's logits."""
import json
import sys

import pytest
import torch

from helpers.probes import package_outputs, probe_inputs, run_probe
from helpers.training import run
from helpers.training_data import make_colour_dataset
from vlmtune.formats import load
from vlmtune.formats.common import read_state_dict

pytestmark = pytest.mark.trainings

ITERS = 4


@pytest.fixture(scope='module')
def stage3(tiny_folder, tmp_path_factory):
    folder = tiny_folder('qwen2', '300m', llm_layers=3)
    root = tmp_path_factory.mktemp('moe-tuning')
    data, images = make_colour_dataset(root, n=16)
    work = root / 'work'
    train = run([sys.executable, '-m', 'vlmtune.cli', 'train', 'moe_cpu', '--checkpoint', str(folder), '--data',
                 str(data), '--images', str(images), '--work-dir', str(work), '--deepspeed', 'zero2',
                 '--cfg-options', f'train_cfg.max_iters={ITERS}'], root)
    out = root / 'moe_qwen2'
    convert = run([sys.executable, '-m', 'vlmtune.cli', 'convert', 'moe_cpu', str(work / f'iter_{ITERS}.pth'),
                   str(out), '--dtype', 'fp32', '--base', str(folder)], root)
    assert 'self-check PASS' in convert.stdout, convert.stdout[-2000:]
    return dict(folder=folder, work=work, out=out, log=train.stdout + train.stderr)


def test_only_experts_and_routers_train(stage3):
    path = next((stage3['work'] / f'iter_{ITERS}.pth').glob('*model_states.pt'))
    keys = set(torch.load(path, map_location='cpu', weights_only=False)['module'])
    assert keys and all('.mlp.experts.' in k or '.mlp.gate.' in k for k in keys), sorted(keys)[:5]
    base, converted = read_state_dict(stage3['folder']), read_state_dict(stage3['out'])
    same = [k for k in base if k in converted and torch.equal(base[k], converted[k])]
    upcycled = ('language_model.model.layers.0.mlp.', 'language_model.model.layers.2.mlp.')
    assert len(same) == len([k for k in base if not k.startswith(upcycled)])  # everything else is untouched
    changed = [k for k in converted if '.mlp.experts.' in k and not torch.equal(
        converted[k], base[k.split('.experts.')[0] + '.' + k.split('.experts.')[1].split('.', 1)[1]])]
    assert changed  # the experts moved away from the dense FFN they were copied from


def test_aux_loss_logged_apart_and_expert_load_reported(stage3):
    history = json.loads((stage3['work'] / 'loss_history.json').read_text())['train']
    assert len(history) == ITERS
    for h in history:
        assert h['loss'] == pytest.approx(h['lm_loss'] + h['moe_aux_loss'], abs=1e-6)
        assert 0.01 * 2 * 0.9 < h['moe_aux_loss'] < 0.01 * 2 * 4  # 2 MoE layers, l_aux between ~1 and E
    assert 'moe_aux_loss:' in stage3['log']
    report = json.loads((stage3['work'] / 'expert_load.json').read_text())
    assert report['layers'] == [0, 2] and (stage3['work'] / 'expert_load.png').stat().st_size > 1000
    for fractions, counts in zip(report['fraction_per_expert'], report['tokens_per_expert']):
        assert sum(fractions) == pytest.approx(1.0) and sum(counts) % 2 == 0  # top-2: two slots per token
    params = report['parameters']
    assert params['active_per_token'] < params['total']
    assert '[moe] expert load per layer' in stage3['log']


def test_converted_folder_is_qwen2_moe_and_loads_without_vlmtune(stage3, tmp_path):
    cfg = json.loads((stage3['out'] / 'config.json').read_text())['llm_config']
    assert cfg['architectures'] == ['Qwen2MoeForCausalLM'] and cfg['mlp_only_layers'] == [1]
    model, tokenizer = load(stage3['out'])
    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    probe = run_probe(stage3['out'], inputs, tmp_path)
    assert not probe['vlmtune_imported'] and probe['answers'] == ref_answers
    torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)
