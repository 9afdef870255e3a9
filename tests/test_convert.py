"""convert_to_official on real tiny LoRA runs (.pth and DeepSpeed folders): self-check, the folder
loads with plain transformers (vlmtune hidden) and answers like the in-memory model, training
settings travel, bad input fails in one line and leaves no folder."""
import json
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS

from helpers.probes import package_outputs, probe_inputs, REPO, run_probe
from helpers.training import RECIPE
from vlmtune.cli import main as cli_main
from vlmtune.formats.common import weight_shapes
from vlmtune.engine.convert import load_trained, read_trained_weights
from vlmtune.engine.launch import load_recipe

pytestmark = pytest.mark.trainings


def convert_cmd(ws, checkpoint, out, *extra):
    return [sys.executable, str(REPO / 'tools' / 'convert_to_official.py'), str(RECIPE), str(checkpoint), str(out),
            '--cfg-options', *ws['options'][:2], *extra]


def in_memory_model(ws, checkpoint):
    cfg = load_recipe(RECIPE, ws['options'])
    wrapper = MODELS.build(dict(cfg.model, dtype='fp32', gradient_checkpointing=False))
    load_trained(wrapper, read_trained_weights(checkpoint), checkpoint)
    wrapper.model.eval()
    return wrapper.model, wrapper.tokenizer


@pytest.mark.parametrize('source', ['pth', 'zero2'])
def test_convert_self_checks_and_loads_without_vlmtune(ws, plain_run, zero2_run, source, tmp_path):
    checkpoint = (plain_run if source == 'pth' else zero2_run) / 'iter_20.pth'
    assert checkpoint.is_file() == (source == 'pth')
    out = tmp_path / 'official'
    result = subprocess.run(convert_cmd(ws, checkpoint, out, '--dtype', 'fp32'), capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith('self-check'))
    assert line.startswith('self-check PASS') and float(line.split('diff| ')[1].split()[0]) <= 1e-4
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['max_dynamic_patch'] == 2  # the recipe's max_tiles, not the base folder's 6
    assert cfg['template'] == json.loads((ws['folder'] / 'config.json').read_text())['template']
    assert cfg['use_llm_lora'] == 0 and cfg['use_backbone_lora'] == 0
    keys = weight_shapes(out)  # single file or shards alike
    assert keys and not any('lora' in k for k in keys)
    assert any(k.startswith('language_model.model.layers.0.attention.wqkv') for k in keys)  # official names
    model, tokenizer = in_memory_model(ws, checkpoint)
    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    probe = run_probe(out, inputs, tmp_path)
    assert not probe['vlmtune_imported']
    assert probe['answers'] == ref_answers
    torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)


def test_convert_zero3_bf16_default(ws, zero3_run, tmp_path, capsys):
    zero3 = zero3_run / 'iter_20.pth'
    out = tmp_path / 'bf16'
    assert cli_main(['convert', str(RECIPE), str(zero3), str(out), '--cfg-options', *ws['options'][:2]]) == 0
    assert 'self-check PASS' in capsys.readouterr().out
    assert json.loads((out / 'config.json').read_text())['torch_dtype'] == 'bfloat16'


def test_convert_refuses_bad_input_and_leaves_nothing(ws, plain_run, tiny_folder, tmp_path, capsys):
    checkpoint = plain_run / 'iter_20.pth'
    options = ['--cfg-options', *ws['options'][:2]]
    # OUT == CHECKPOINT, and a non-empty OUT without --overwrite
    assert cli_main(['convert', str(RECIPE), str(plain_run), str(plain_run), *options]) == 2
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'keep.txt').write_text('user data')
    assert cli_main(['convert', str(RECIPE), str(checkpoint), str(busy), *options]) == 2
    assert (busy / 'keep.txt').read_text() == 'user data'
    # a checkpoint from a different recipe (other base model: shapes differ)
    other = tiny_folder('qwen2', '300m', llm_width=48, llm_intermediate=96)
    out = tmp_path / 'mismatch'
    assert cli_main(['convert', str(RECIPE), str(checkpoint), str(out), '--cfg-options',
                     f'model.checkpoint={other}', f'train_dataloader.dataset.checkpoint={other}']) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('error: ') and 'different recipe' in err
    assert not out.exists() and not list(tmp_path.glob('.mismatch*'))
    # a missing checkpoint file
    assert cli_main(['convert', str(RECIPE), str(tmp_path / 'nope.pth'), str(out), *options]) == 2
    assert 'not found' in capsys.readouterr().err


def test_failed_self_check_leaves_no_folder(ws, plain_run, tmp_path, monkeypatch, capsys):
    from vlmtune.engine import convert as convert_module
    monkeypatch.setitem(convert_module.TOLERANCE, 'fp32', -1.0)  # make any difference a failure
    out = tmp_path / 'failed'
    code = cli_main(['convert', str(RECIPE), str(plain_run / 'iter_20.pth'), str(out), '--dtype', 'fp32',
                     '--cfg-options', *ws['options'][:2]])
    assert code == 1 and 'self-check FAIL' in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob('.failed*'))
