"""Saved folders load and chat under the official InternVL environment's transformers 4.37.2 and
tokenizers 0.15.2 (the cached side environment `official-4.37.2`, vlmtune/side_envs.py)."""
import pytest
import torch

from helpers.probes import _probe_subprocess, package_outputs, probe_inputs, run_probe
from vlmtune.side_envs import side_env
from vlmtune.formats import load

pytestmark = pytest.mark.side_envs


@pytest.fixture(scope='session')
def official_env():
    return side_env('official-4.37.2')


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


def test_qwen3_folder_says_which_transformers_it_needs(official_env, tiny_folder, tmp_path):
    """InternVL3.5's Qwen3 needs transformers >= 4.48 (the shipped copy) or >= 4.51 (its own): under
    4.37.2 loading fails with that, not with an import error deep in the remote code."""
    folder = tiny_folder('qwen3', '300m')
    model, tokenizer = load(folder)
    result, (output,) = _probe_subprocess([(folder, probe_inputs(tokenizer, model.num_image_token))], tmp_path,
                                          official_env)
    error = torch.load(output, weights_only=False).get('error', '')
    assert result.returncode == 1 and 'Qwen3ForCausalLM needs a newer transformers' in error and '4.51' in error
