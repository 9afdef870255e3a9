"""Every layout's owner: the code its users load a folder with, and the inputs that code takes. The contract
tests load what the package saved with the owner (in a fresh interpreter, vlmtune hidden, one per
environment) and compare its logits with the package's. A layout registered without an entry here fails
`test_every_layout_has_an_owner`: an owner check is written once per layout, never per part."""
import os
import subprocess
import sys

import torch

from vlmtune.model.llm import REGISTRY as LLMS
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


def inputs_for(model, tokenizer):
    """One image (wide, so tiling and unpadding do something) and a one-turn prompt with its answer."""
    from PIL import Image
    image = Image.linear_gradient('L').convert('RGB').resize((84, 56))
    processor = model.image_processor
    layout = processor.layout(*image.size)
    prompt = model.image_tokens.expand(model.prompt('<image>\nWhat colour is it?'), [layout])
    ids = model.template.chat_inputs(tokenizer, prompt + ' red')['input_ids']
    pixels = processor.process(image)
    return dict(pixel_values=pixels, input_ids=ids, attention_mask=torch.ones_like(ids),
                image_flags=torch.ones(pixels.shape[0], 1, dtype=torch.long), image_sizes=torch.tensor([image.size]))


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


def caveat_env(layout, folder):
    """The transformers that runs this folder right where the installed owner does not (formats.owner_env)."""
    from vlmtune.formats import owner_env, read_spec
    return owner_env(layout, read_spec(folder))


def owner_logits(jobs, tmp_path, env=None) -> list:
    """jobs: [(layout, folder, batch, LLM family)] -> per job the owner's result ({'logits', ...} or {'error'});
    one subprocess per environment: the layout's, else the transformers the layout's owner_caveat names
    where the pinned one does not run the folder right, else the LLM entry's oracle_env (a family the pinned
    transformers computes wrong); env: every job there instead (a newer transformers). Folders need distinct
    names (transformers names remote modules after them)."""
    by_env = {}
    for index, (layout, folder, batch, family) in enumerate(jobs):
        own_env, loader, inputs = OWNERS[layout]
        run = {'folder': str(folder), 'loader': loader, 'inputs': inputs(batch)}
        by_env.setdefault(env or own_env or caveat_env(layout, folder) or LLMS.get(family).oracle_env,
                          []).append((index, run))
    results = [None] * len(jobs)
    for run_env, runs in by_env.items():
        job, out = tmp_path / f'owner-job-{run_env}.pt', tmp_path / f'owner-out-{run_env}.pt'
        torch.save([run for _, run in runs], job)
        environ = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / f'modules-{run_env}'), HF_HUB_OFFLINE='1')
        environ.pop('PYTHONPATH', None)
        if run_env:
            environ['PYTHONPATH'] = str(side_env(run_env))
        done = subprocess.run([sys.executable, str(PROBE), str(job), str(out)], cwd=PROBE.parent, env=environ,
                              capture_output=True, text=True, timeout=900)
        assert out.exists(), done.stderr[-3000:]
        got = torch.load(out, weights_only=False)
        assert not got[-1]['vlmtune_imported']
        for (index, _), result in zip(runs, got):
            results[index] = result
    return results


def pinned_transformers_computes(family: str) -> bool:
    """Does this process's transformers build the family's release right (its own class, nothing dropped)? A
    family with an oracle_env (e.g. Phi-2's head bias under 4.48.0) is checked in that environment instead."""
    entry = LLMS.get(family)
    return entry.in_transformers and entry.oracle_env is None
