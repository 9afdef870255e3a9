"""Saved folders load and chat under the official InternVL environment's transformers 4.37.2 and
tokenizers 0.15.2 (installed once with `pip install --target` into a cached folder)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import package_outputs, probe_inputs, run_probe
from vlmtune.formats import load

OFFICIAL_PINS = ['transformers==4.37.2', 'tokenizers==0.15.2']


@pytest.fixture(scope='session')
def official_env():
    root = Path(os.environ.get('VLMTUNE_OFFICIAL_ENV',
                               Path.home() / '.cache' / 'vlmtune' / 'official-env-4.37.2'))
    marker = root / '.complete'
    if not marker.exists():
        result = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
                                 str(root), *OFFICIAL_PINS], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f'could not install {OFFICIAL_PINS}: {result.stderr[-2000:]}'
        marker.touch()
    return root


@pytest.mark.parametrize('llm,vit', [('qwen2', '300m'), ('internlm2', '6b'), ('llama', '6b')])
def test_folder_loads_and_chats_in_official_env(official_env, tiny_folder, llm, vit, tmp_path):
    folder = tiny_folder(llm, vit)
    model, tokenizer = load(folder)
    inputs = probe_inputs(tokenizer, model.num_image_token)
    ref_logits, ref_answers = package_outputs(model, tokenizer, inputs)
    probe = run_probe(folder, inputs, tmp_path, pythonpath=official_env)
    assert probe['transformers_version'] == '4.37.2'
    assert not probe['vlmtune_imported']
    torch.testing.assert_close(probe['logits'].float(), ref_logits, atol=1e-4, rtol=0)
    assert probe['answers'] == ref_answers
