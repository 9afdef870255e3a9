import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmtune.model.tiny import TinySpec, make_tiny_folder

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ['qwen2', 'internlm2', 'phi3', 'llama']
VITS = ['300m', '6b']


@pytest.fixture(scope='session')
def tiny_folder(tmp_path_factory):
    """tiny_folder(llm=..., vit=..., **spec) -> path of a cached fp32 official-format folder."""
    cache = {}

    def make(llm='qwen2', vit='300m', **kwargs):
        key = (llm, vit, tuple(sorted(kwargs.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f'tiny-{llm}-{vit}') / 'model'
            cache[key] = make_tiny_folder(out, TinySpec(llm=llm, vit=vit, **kwargs))
        return cache[key]
    return make


def probe_inputs(tokenizer, num_image_token, tiles=2, image_size=56, seed=0):
    """Fixed forward + chat inputs shared by the in-process model and subprocess probes."""
    gen = torch.Generator().manual_seed(seed)
    text = ('<|im_start|>user\n<img>' + '<IMG_CONTEXT>' * num_image_token * tiles + '</img>\n'
            'What is in the image?<|im_end|>')
    enc = tokenizer(text, return_tensors='pt')
    return dict(pixel_values=torch.randn(tiles, 3, image_size, image_size, generator=gen),
                input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                image_flags=torch.ones(tiles, 1, dtype=torch.long),
                chat_pixel_values=torch.randn(tiles, 3, image_size, image_size, generator=gen),
                questions=['What is in the image?', 'What color is it?'], max_new_tokens=6,
                messages=[{'role': 'user', 'content': '<image>\nWhat is in the image?'},
                          {'role': 'assistant', 'content': 'A cat.'},
                          {'role': 'user', 'content': 'What color is it?'}])


def package_outputs(model, tokenizer, inputs):
    with torch.no_grad():
        logits = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                       attention_mask=inputs['attention_mask'], image_flags=inputs['image_flags']).logits
    gen = dict(max_new_tokens=inputs['max_new_tokens'], do_sample=False)
    a1, history = model.chat(tokenizer, inputs['chat_pixel_values'], inputs['questions'][0], gen,
                             history=None, return_history=True)
    a2, _ = model.chat(tokenizer, inputs['chat_pixel_values'], inputs['questions'][1], gen,
                       history=history, return_history=True)
    return logits, [a1, a2]


def run_probe(folder, inputs, tmp_path, pythonpath=None):
    """Load `folder` in a fresh interpreter with vlmtune hidden; returns the probe's outputs."""
    inputs_path, output_path = tmp_path / 'probe_in.pt', tmp_path / 'probe_out.pt'
    torch.save(inputs, inputs_path)
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if pythonpath:
        env['PYTHONPATH'] = str(pythonpath)
    env['HF_MODULES_CACHE'] = str(tmp_path / 'hf_modules')
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'remote_probe.py'), str(folder),
                             str(inputs_path), str(output_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(output_path, weights_only=False)
