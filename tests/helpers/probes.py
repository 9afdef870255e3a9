"""Loading a saved folder with its owner's code, vlmtune hidden (tests/probes/*_probe.py run in a fresh
interpreter), and the fixed inputs both sides compute on."""
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
PROBES = REPO / 'tests' / 'probes'


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


def _probe_subprocess(jobs, tmp_path, pythonpath):
    args = []
    for i, (folder, inputs) in enumerate(jobs):
        suffix = f'_{i}' if len(jobs) > 1 else ''
        inputs_path, output_path = tmp_path / f'probe_in{suffix}.pt', tmp_path / f'probe_out{suffix}.pt'
        torch.save(inputs, inputs_path)
        args += [str(folder), str(inputs_path), str(output_path)]
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if pythonpath:
        env['PYTHONPATH'] = str(pythonpath)
    env['HF_MODULES_CACHE'] = str(tmp_path / 'hf_modules')
    result = subprocess.run([sys.executable, str(PROBES / 'remote_probe.py'), *args], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    return result, [Path(a) for a in args[2::3]]


def run_probe(folder, inputs, tmp_path, pythonpath=None):
    """Load `folder` in a fresh interpreter with vlmtune hidden; returns the probe's outputs."""
    result, (output_path,) = _probe_subprocess([(folder, inputs)], tmp_path, pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(output_path, weights_only=False)


def run_probes(jobs, tmp_path, pythonpath=None):
    """run_probe for several (folder, inputs) pairs in one interpreter; a folder that failed gives
    {'error': traceback}. Folders need distinct names: transformers names the remote-code module
    after the folder's basename."""
    names = [Path(folder).name for folder, _ in jobs]
    assert len(set(names)) == len(names), names
    result, outputs = _probe_subprocess(jobs, tmp_path, pythonpath)
    missing = [p for p in outputs if not p.exists()]
    assert not missing, result.stderr[-3000:]
    return [torch.load(p, weights_only=False) for p in outputs]
