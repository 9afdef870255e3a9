"""InternVL3.5-shaped tiny folders (Qwen3 and Qwen3-MoE LLMs, head_dim 32): `vlmtune train lora_cpu`
under ZeRO-2, `vlmtune convert`, then the converted folder's own remote code with vlmtune hidden
under the pinned 4.48 (our shipped Qwen3 modules) and under 4.57.6 (transformers' own Qwen3 classes):
equal logits and answers, equal to the package. MoE: the router aux loss is its own logged scalar,
LoRA sits on attention and every expert FFN, and the router stays frozen."""
import json
import sys

import pytest
import torch

from helpers.probes import package_outputs, probe_inputs, run_probe
from helpers.training import run
from vlmtune.side_envs import side_env
from helpers.training_data import make_colour_dataset
from vlmtune.formats import load

pytestmark = pytest.mark.side_envs

ITERS = 4


@pytest.fixture(scope='module', params=['qwen3', 'qwen3_moe'])
def trained(request, tiny_folder, tmp_path_factory):
    llm = request.param
    folder = tiny_folder(llm, '300m')
    root = tmp_path_factory.mktemp(f'internvl35-{llm}')
    data, images = make_colour_dataset(root, n=16)
    work = root / 'work'
    train = run([sys.executable, '-m', 'vlmtune.cli', 'train', 'lora_cpu', '--checkpoint', str(folder),
                 '--data', str(data), '--images', str(images), '--work-dir', str(work), '--deepspeed', 'zero2',
                 '--cfg-options', f'train_cfg.max_iters={ITERS}'], root)
    assert 'zero2_cpu.json' in train.stdout
    converted = root / llm  # the remote-code module is named after the folder
    out = run([sys.executable, '-m', 'vlmtune.cli', 'convert', 'lora_cpu', str(work / f'iter_{ITERS}.pth'),
               str(converted), '--dtype', 'fp32', '--base', str(folder)], root)
    assert 'self-check PASS' in out.stdout, out.stdout[-2000:]
    return dict(llm=llm, folder=folder, work=work, converted=converted, log=train.stdout + train.stderr, root=root)


def trained_keys(work):
    path = next((work / f'iter_{ITERS}.pth').glob('*model_states.pt'))
    return set(torch.load(path, map_location='cpu', weights_only=False)['module'])


def test_lora_targets_attention_and_every_ffn_not_the_router(trained):
    keys = trained_keys(trained['work'])
    lora = {k for k in keys if '.lora_' in k}
    assert lora and keys - lora == {k for k in keys if k.startswith('model.connector.')}
    for target in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
        assert any(f'self_attn.{target}.lora_A' in k for k in lora), target
    if trained['llm'] == 'qwen3_moe':
        config = json.loads((trained['folder'] / 'config.json').read_text())['llm_config']
        for expert in range(config['num_experts']):
            for proj in ('gate_proj', 'up_proj', 'down_proj'):
                assert any(f'mlp.experts.{expert}.{proj}.lora_A' in k for k in lora), (expert, proj)
        assert not any('mlp.gate.' in k for k in keys)  # the router is frozen
    else:
        assert any('mlp.gate_proj.lora_A' in k for k in lora)


def test_moe_aux_loss_is_logged_as_its_own_scalar(trained):
    history = json.loads((trained['work'] / 'loss_history.json').read_text())['train']
    assert len(history) == ITERS
    if trained['llm'] != 'qwen3_moe':
        assert all(set(h) == {'iter', 'loss'} for h in history) and 'moe_aux_loss' not in trained['log']
        return
    for h in history:
        assert {'loss', 'lm_loss', 'moe_aux_loss'} <= set(h)
        assert 0 < h['moe_aux_loss'] < 0.01  # coef 0.001 x load-balancing loss (top-k at perfect balance)
        assert h['loss'] == pytest.approx(h['lm_loss'] + h['moe_aux_loss'], abs=1e-6)
    assert 'moe_aux_loss:' in trained['log'] and 'lm_loss:' in trained['log']  # mmengine's logger line


def test_converted_folder_loads_under_4_48_and_4_57_with_equal_logits(trained, tmp_path):
    folder = trained['converted']
    assert (folder / 'qwen3.py').exists() and (folder / 'qwen3_moe.py').exists()
    cfg = json.loads((folder / 'config.json').read_text())
    arch = {'qwen3': 'Qwen3ForCausalLM', 'qwen3_moe': 'Qwen3MoeForCausalLM'}[trained['llm']]
    assert cfg['llm_config']['architectures'] == [arch] and cfg['llm_config']['head_dim'] == 32
    model, tokenizer = load(folder)
    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model.eval(), tokenizer, inputs)
    (tmp_path / 'main').mkdir()
    (tmp_path / 'newer').mkdir()
    main = run_probe(folder, inputs, tmp_path / 'main')
    newer = run_probe(folder, inputs, tmp_path / 'newer', pythonpath=side_env('tf-4.57'))
    for probe in (main, newer):
        assert not probe['vlmtune_imported']
        assert probe['answers'] == ref_answers
        torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)
    assert (main['transformers_version'], newer['transformers_version']) == ('4.48.0', '4.57.6')
