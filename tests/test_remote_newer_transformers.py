"""Exported folders' own remote code under newer transformers than the project's 4.48: the last 4.x
(4.57.6, what vLLM / newer LMDeploy users have) and 5.24.0. Each folder is loaded in a cached side
environment with vlmtune hidden; its logits, two-turn greedy chat and chat-template prompt must
equal what the same folder's remote code gives in the main environment (4.48), and its tokenizer
must split the chat-template prompt into the same ids. The composite layout's shipped tower and connector
files likewise: each tower's folder loads there with the package's logits."""
import json

import pytest
import torch
import transformers

from helpers.owners import inputs_for, owner_logits
from helpers.probes import probe_inputs, run_probes

from vlmtune.data.image.tokens import INTERNVL_ADDED
from vlmtune.formats import composite, save
from vlmtune.formats.internvl import held_llms
from vlmtune.side_envs import PINS, side_env
from vlmtune.tiny import compose_tiny

pytestmark = pytest.mark.side_envs

SIDE_ENVS = {'tf-4.57': '4.57.6', 'tf-5.24': '5.24.0'}
# Every LLM family the official layout holds, the two ViT flavours alternating (InternLM2 with the 6B one).
CASES = [(entry.family, '6b' if entry.key_map or i % 2 else '300m') for i, entry in enumerate(held_llms())]


def num_image_token(folder):
    cfg = json.loads((folder / 'config.json').read_text())
    size = cfg.get('force_image_size') or cfg['vision_config']['image_size']
    return int((size // cfg['vision_config']['patch_size']) ** 2 * cfg['downsample_ratio'] ** 2)


@pytest.fixture(scope='session')
def cases(tiny_folder, tmp_path_factory):
    """(llm, vit) -> (folder, probe inputs). The session's tiny folders are all named `model`, so each
    is reached through a link with its own name (the remote-code module is named after it)."""
    root = tmp_path_factory.mktemp('remote-newer')
    out = {}
    for llm, vit in CASES:
        link = root / f'{llm}-{vit}'
        link.symlink_to(tiny_folder(llm, vit), target_is_directory=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(link, trust_remote_code=True, use_fast=False)
        out[(llm, vit)] = link, probe_inputs(tokenizer, num_image_token(link))
    return out


@pytest.fixture(scope='session')
def probed(cases, tmp_path_factory):
    """env name (None: main env) -> {(llm, vit): probe output}; one interpreter per env for all folders."""
    results = {}

    def get(env):
        if env not in results:
            outputs = run_probes(list(cases.values()), tmp_path_factory.mktemp(f'probe-{env or "main"}'),
                                 pythonpath=side_env(env) if env else None)
            results[env] = dict(zip(cases, outputs))
        return results[env]
    return get


def decoded_in(env, answer: str) -> str:
    """The main environment's answer as `env` decodes the same ids: transformers 5 skips every added special
    token (InternVL's <quad>, <ref>, ...) with skip_special_tokens, 4.x only the named special tokens."""
    if SIDE_ENVS[env].startswith('4.'):
        return answer
    for token in INTERNVL_ADDED:
        answer = answer.replace(token, '')
    return answer


def test_side_envs_pin_the_versions_under_test():
    for env, version in SIDE_ENVS.items():
        assert f'transformers=={version}' in PINS[env]


@pytest.mark.parametrize('env', sorted(SIDE_ENVS))
@pytest.mark.parametrize('llm,vit', CASES)
def test_folder_matches_main_env(probed, env, llm, vit):
    ref = probed(None)[(llm, vit)]
    assert 'error' not in ref, ref.get('error')
    assert ref['transformers_version'] == transformers.__version__
    probe = probed(env)[(llm, vit)]
    assert 'error' not in probe, probe.get('error')
    assert probe['transformers_version'] == SIDE_ENVS[env]
    assert not probe['vlmtune_imported'] and not ref['vlmtune_imported']
    assert probe['logits'].shape == ref['logits'].shape
    torch.testing.assert_close(probe['logits'].float(), ref['logits'].float(), atol=1e-4, rtol=0)
    assert probe['answers'] == [decoded_in(env, answer) for answer in ref['answers']]
    assert all(isinstance(a, str) and a for a in probe['answers'])
    assert probe['chat_template_prompt'] == ref['chat_template_prompt']
    assert probe['chat_template_ids'] == ref['chat_template_ids']  # the tokenizer splits it the same way


# --- the composite layout's shipped code (towers and connectors) under the newer transformers --------------
def composite_cases():
    """One composition per tower the composite layout ships, each with a connector file it ships."""
    connectors = {'clip': 'mlp2x_gelu', 'siglip': 'resampler', 'blip2_vision': 'qformer',
                  'intern_vit': 'pixel_shuffle_mlp'}
    return [(tower, connectors.get(tower, 'mlp2x_gelu')) for tower in composite.TOWERS]


@pytest.fixture(scope='module')
def composite_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('composite-newer')
    out = []
    for index, (tower, connector) in enumerate(composite_cases()):
        model, tokenizer = compose_tiny(tower, connector, 'qwen2', ('square', {'crop': False}), 'vicuna_v1')
        folder = save(model, tokenizer, root / f'composite{index}', layout='composite', dtype='fp32')
        batch = inputs_for(model, tokenizer)
        with torch.no_grad():
            logits = model(**batch).logits
        out.append(((tower, connector), folder, batch, logits))
    return out


@pytest.mark.parametrize('env', sorted(SIDE_ENVS))
def test_composite_folders_load_in_newer_transformers(composite_folders, env, tmp_path):
    results = owner_logits([('composite', folder, batch, 'qwen2') for _, folder, batch, _ in composite_folders],
                           tmp_path, env=env)
    for (parts, _, _, logits), result in zip(composite_folders, results):
        assert 'error' not in result, (parts, result.get('error'))
        assert result['transformers'] == SIDE_ENVS[env], result['transformers']
        torch.testing.assert_close(result['logits'], logits, atol=1e-4, rtol=0, msg=str(parts))
