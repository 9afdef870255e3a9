"""Every layout's owner: the code its users load a folder with, and the inputs that code takes. The contract
tests load what the package saved with the owner (in a fresh interpreter, vlmtune hidden, one per
environment) and compare its logits with the package's. A layout registered without an entry here fails
`test_every_layout_has_an_owner`: an owner check is written once per layout, never per part."""
import os
import subprocess
import sys

import torch

from vlmtune.side_envs import side_env

from .probes import REPO

PROBE = REPO / 'tests' / 'probes' / 'owner_probe.py'


def internvl_inputs(batch):
    return {k: batch[k] for k in ('pixel_values', 'input_ids', 'attention_mask', 'image_flags')}


def plain_inputs(batch):
    return {k: batch[k] for k in ('pixel_values', 'input_ids', 'attention_mask')}


def llava_next_inputs(batch):
    width, height = batch['image_sizes'][0].tolist()
    return {'pixel_values': batch['pixel_values'][None], 'input_ids': batch['input_ids'],
            'attention_mask': batch['attention_mask'], 'image_sizes': torch.tensor([[height, width]])}


# layout -> (side environment or None, loader for owner_probe.py, inputs it takes); 'vlmtune': the package itself.
OWNERS = {
    'internvl': (None, 'remote', internvl_inputs),                          # OpenGVLab's remote code (shipped)
    'internvl_hf': ('tf-4.57', 'AutoModelForImageTextToText', plain_inputs),  # transformers >= 4.52
    'llava_hf': (None, 'LlavaForConditionalGeneration', plain_inputs),
    'llava_next_hf': (None, 'LlavaNextForConditionalGeneration', llava_next_inputs),
    'blip2_hf': (None, 'Blip2ForConditionalGeneration', plain_inputs),
    'composite': (None, 'remote_causal_lm', plain_inputs),                 # the folder's own remote code
    'vlmtune': None,                                                        # vlmtune reloads it (no one else does)
}


# What an owner cannot run although the layout holds it, with the error it raises (asserted, not skipped).
KNOWN_LIMITS = {('internvl_hf', 'qwen2_moe'): "Qwen2MoeModel.forward() got an unexpected keyword argument 'image_sizes'"}


def owner_logits(jobs, tmp_path) -> list:
    """jobs: [(layout, folder, batch)] -> per job the owner's result ({'logits', ...} or {'error'}); one
    subprocess per environment. Folders need distinct names (transformers names remote modules after them)."""
    by_env = {}
    for index, (layout, folder, batch) in enumerate(jobs):
        env, loader, inputs = OWNERS[layout]
        by_env.setdefault(env, []).append((index, {'folder': str(folder), 'loader': loader, 'inputs': inputs(batch)}))
    results = [None] * len(jobs)
    for env, runs in by_env.items():
        job, out = tmp_path / f'owner-job-{env}.pt', tmp_path / f'owner-out-{env}.pt'
        torch.save([run for _, run in runs], job)
        environ = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / f'modules-{env}'), HF_HUB_OFFLINE='1')
        environ.pop('PYTHONPATH', None)
        if env:
            environ['PYTHONPATH'] = str(side_env(env))
        done = subprocess.run([sys.executable, str(PROBE), str(job), str(out)], cwd=PROBE.parent, env=environ,
                              capture_output=True, text=True, timeout=900)
        assert out.exists(), done.stderr[-3000:]
        got = torch.load(out, weights_only=False)
        assert not got[-1]['vlmtune_imported']
        for (index, _), result in zip(runs, got):
            results[index] = result
    return results
