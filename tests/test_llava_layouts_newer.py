"""Folders the llava layouts write, loaded by newer transformers (cached side envs 4.57.6 and 5.24.0,
one probe subprocess each, vlmtune hidden there): no missing or unexpected keys, logits equal 4.48's,
what they save (5.x: model.* names) reads back to the same weights and spec, and 4.57's
`LlavaImageProcessor` reads our `do_pad: true` and pads like LLaVA's expand2square.
Slow (two interpreters); the fast checks are in test_llava_layouts.py.
"""
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoProcessor

from helpers.probes import REPO
from vlmtune.side_envs import side_env
from helpers.llava_tiny import NAMES, clip_processor, expand2square, image, messages
from vlmtune.formats.common import read_state_dict
from vlmtune.data.normalisation import CLIP_MEAN

pytestmark = pytest.mark.side_envs

ENVS = ('tf-4.57', 'tf-5.24')


@pytest.fixture(scope='module')
def probes(llava_hubs, llava_written, tmp_path_factory):
    root = tmp_path_factory.mktemp('newer')
    runs, reference = [], {}
    for name in NAMES:
        folder = llava_written[name]['ours']
        processor = AutoProcessor.from_pretrained(str(folder))
        prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
        inputs = dict(processor(images=image(100, 50), text=prompt, return_tensors='pt'))
        with torch.no_grad():
            reference[name] = llava_hubs[name][2].from_pretrained(str(folder)).eval()(**inputs).logits
        runs.append({'name': name, 'folder': str(folder), 'arch': llava_hubs[name][2].__name__, 'inputs': inputs,
                     'pad_image': image(112, 56) if name == 'flat' else None})
    out = {}
    for env in ENVS:
        job = {'runs': [dict(run, save_to=str(root / f'{env}-{run["name"]}')) for run in runs]}
        torch.save(job, root / f'job-{env}.pt')
        environ = dict(os.environ, PYTHONPATH=str(side_env(env)), HF_HUB_OFFLINE='1')
        result = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'llava_probe.py'), str(root / f'job-{env}.pt'),
                                 str(root / f'out-{env}.pt')], cwd=REPO / 'tests' / 'probes', env=environ, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        out[env] = dict(zip(NAMES, torch.load(root / f'out-{env}.pt', weights_only=False)))
        for name in NAMES:
            out[env][name]['saved'] = root / f'{env}-{name}'
    return out, reference


@pytest.mark.parametrize('env', ENVS)
@pytest.mark.parametrize('name', NAMES)
def test_newer_transformers_load_ours_and_we_load_theirs(probes, llava_hubs, llava_written, env, name):
    results, reference = probes
    got = results[env][name]
    assert not got['missing'] and not got['unexpected'], got
    assert torch.allclose(got['logits'], reference[name], atol=1e-4, rtol=0), \
        (got['logits'] - reference[name]).abs().max()
    adapter, spec = llava_hubs[name][0], llava_written[name]['own_spec']
    fresh = f"{got['saved']}-fresh"
    if env == 'tf-5.24':  # its CLIP / SigLIP lost the vision_model level: we read those names too
        assert not any('vision_model' in k for k in read_state_dict(fresh))
    for folder in (got['saved'], fresh):
        state = adapter.from_layout(adapter.read_state(folder), spec)
        assert state.keys() == llava_written[name]['state'].keys()
        assert all(torch.equal(state[k], llava_written[name]['state'][k]) for k in state)
    again = adapter.read_spec(got['saved'])  # their config (their field set), our record kept
    for part in ('vision_tower', 'connector', 'image_processor', 'template'):
        assert {k: v for k, v in getattr(again, part).items() if k != 'config'} == \
            {k: v for k, v in getattr(spec, part).items() if k != 'config'}
    assert again.llm['type'] == spec.llm['type'] and again.llm_config().rope_theta == spec.llm_config().rope_theta


@pytest.mark.parametrize('env', ENVS)
def test_newer_llava_image_processor_pads_like_training(probes, env):
    pixels = probes[0][env]['flat']['pad_pixels']
    expected = clip_processor()(expand2square(image(112, 56), CLIP_MEAN), return_tensors='pt')['pixel_values']
    assert (pixels - expected).abs().max() < 1e-5
