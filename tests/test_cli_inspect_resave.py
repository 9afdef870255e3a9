import json

import torch

from vlmtune.cli import main as cli_main
from vlmtune.formats import load
from vlmtune.formats.common import stored_dtype


def test_inspect_reports_family_flavour_template_and_counts(tiny_folder, capsys):
    folder = tiny_folder('internlm2', '6b')
    assert cli_main(['inspect', str(folder), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    model, _ = load(folder)
    counts = model.parameter_counts()
    assert info['layout'] == 'internvl'
    assert info['llm_family'] == 'InternLM2ForCausalLM'
    assert info['vit_flavour'].startswith('6B-style')
    assert info['template'] == 'internlm2-chat'
    assert info['tiles'] == {'image_size': 56, 'dynamic': True, 'min': 1, 'max': 6, 'thumbnail': True,
                             'tokens_per_tile': 4}
    assert info['weights']['parameters'] == counts
    assert info['missing'] == []
    assert cli_main(['inspect', str(folder)]) == 0
    text = capsys.readouterr().out
    assert 'InternLM2ForCausalLM' in text and 'missing       nothing' in text


def test_inspect_names_what_is_missing(tiny_folder, tmp_path, capsys):
    import shutil
    folder = tmp_path / 'broken'
    shutil.copytree(tiny_folder('qwen2', '300m'), folder)
    (folder / 'modeling_internvl_chat.py').unlink()
    (folder / 'generation_config.json').unlink()
    assert cli_main(['inspect', str(folder), '--json']) == 0
    missing = json.loads(capsys.readouterr().out)['missing']
    assert 'remote code modeling_internvl_chat.py' in missing and 'generation_config.json' in missing


def test_resave_keeps_the_source_dtype_unless_asked(tiny_folder, tmp_path, capsys):
    """An fp32 folder resaves fp32 (bit for bit); --dtype bf16 converts; a bf16 folder resaves bf16."""
    src = tiny_folder('phi3', '300m')
    assert cli_main(['resave', str(src), str(tmp_path / 'kept')]) == 0
    assert cli_main(['inspect', str(tmp_path / 'kept'), '--json']) == 0
    kept = json.loads(capsys.readouterr().out.split('\n', 1)[1])
    assert kept['torch_dtype'] == 'float32' and set(kept['weights']['dtypes']) == {'F32'}
    a, b = load(src)[0], load(tmp_path / 'kept')[0]
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert cli_main(['resave', str(src), str(tmp_path / 'bf16'), '--dtype', 'bf16']) == 0
    capsys.readouterr()
    assert cli_main(['inspect', str(tmp_path / 'bf16'), '--json']) == 0
    bf16 = json.loads(capsys.readouterr().out)
    source_counts = a.parameter_counts()
    assert bf16['torch_dtype'] == 'bfloat16' and set(bf16['weights']['dtypes']) == {'BF16'}
    assert bf16['weights']['parameters'] == source_counts and bf16['missing'] == []
    assert bf16['layout'] == 'internvl' and bf16['llm_family'] == 'Phi3ForCausalLM'
    assert cli_main(['resave', str(tmp_path / 'bf16'), str(tmp_path / 'bf16-again')]) == 0
    assert stored_dtype(tmp_path / 'bf16-again') == 'bf16'
    assert cli_main(['resave', str(src), str(tmp_path / 'kept')]) == 2  # not empty, no --overwrite
    assert 'not empty' in capsys.readouterr().err
