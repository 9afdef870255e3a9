"""Bad checkpoint folders give one-line errors naming the file and key; nothing is written on failure."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlmtune.cli import main as cli_main
from vlmtune.formats import CheckpointError, internvl, load, save


@pytest.fixture
def folder(tiny_folder, tmp_path):
    copy = tmp_path / 'ckpt'
    shutil.copytree(tiny_folder('qwen2', '300m'), copy)
    return copy


def edit_config(folder, fn):
    cfg = json.loads((folder / 'config.json').read_text())
    fn(cfg)
    (folder / 'config.json').write_text(json.dumps(cfg))


def assert_one_line(exc, *needles):
    message = str(exc.value)
    assert '\n' not in message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize('field', ['llm_config', 'vision_config', 'template'])
def test_missing_config_field(folder, field):
    edit_config(folder, lambda cfg: cfg.pop(field))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'config.json', field)


def test_missing_vision_field(folder):
    edit_config(folder, lambda cfg: cfg['vision_config'].pop('patch_size'))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'config.json', 'vision_config.patch_size')


def test_unknown_architectures(folder):
    edit_config(folder, lambda cfg: cfg.update(architectures=['FuyuForCausalLM']))  # no layout reads it
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'config.json', 'FuyuForCausalLM', 'InternVLChatModel', 'LlavaForConditionalGeneration')


def test_unknown_llm_architecture(folder):
    edit_config(folder, lambda cfg: cfg['llm_config'].update(architectures=['GemmaForCausalLM']))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'config.json', 'GemmaForCausalLM')


def test_truncated_safetensors(folder):
    path = folder / 'model.safetensors'
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'model.safetensors', 'truncated')


def test_wrong_shape(folder):
    state = load_file(str(folder / 'model.safetensors'))
    key = 'mlp1.1.weight'
    state[key] = torch.zeros(state[key].shape[0], state[key].shape[1] + 1)
    save_file(state, str(folder / 'model.safetensors'))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, key, 'shape mismatch')


def test_missing_key_and_missing_shard(folder, tmp_path):
    state = load_file(str(folder / 'model.safetensors'))
    state.pop('mlp1.0.bias')
    save_file(state, str(folder / 'model.safetensors'))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'mlp1.0.bias', 'missing')
    (folder / 'model.safetensors').unlink()
    (folder / 'model.safetensors.index.json').write_text(json.dumps(
        {'metadata': {}, 'weight_map': {'mlp1.0.bias': 'model-00001-of-00002.safetensors'}}))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'model-00001-of-00002.safetensors', 'missing')


def test_null_system_message_rejected(folder):
    edit_config(folder, lambda cfg: cfg.update(system_message=None))
    with pytest.raises(CheckpointError) as exc:
        load(folder)
    assert_one_line(exc, 'system_message')


def test_failed_save_leaves_nothing(folder, tmp_path, monkeypatch):
    model, tokenizer = load(folder)

    def boom(*args, **kwargs):
        raise RuntimeError('disk full')
    monkeypatch.setattr(internvl, 'write_weights', boom)
    with pytest.raises(RuntimeError):
        save(model, tokenizer, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.out')]


def test_failed_overwrite_keeps_previous_folder(folder, tmp_path, monkeypatch):
    model, tokenizer = load(folder)
    out = save(model, tokenizer, tmp_path / 'out')
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(FileExistsError):
        save(model, tokenizer, out)
    monkeypatch.setattr(internvl, 'copy_remote_code', lambda *a, **k: (_ for _ in ()).throw(OSError('x')))
    with pytest.raises(OSError):
        save(model, tokenizer, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before


def test_cli_reports_one_line_error(folder, capsys):
    edit_config(folder, lambda cfg: cfg.update(architectures=['Nope']))
    assert cli_main(['inspect', str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err and 'config.json' in err
