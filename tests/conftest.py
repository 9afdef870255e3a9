import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmtune.formats.internvl import held_llms
from vlmtune.tiny import TinySpec, make_tiny_folder, make_tiny_parts
from train_data import assert_equal_trained_tokens, make_colour_dataset
from vlmtune.engine import build_train_dataset
from vlmtune.engine.launch import shortcut_options

REPO = Path(__file__).resolve().parent.parent
FAMILIES = [entry.family for entry in held_llms()]  # every LLM family the official layout holds
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


@pytest.fixture(scope='session')
def tiny_parts(tmp_path_factory):
    """A tiny InternViT folder and a tiny Qwen2 LLM folder (as released, without the image tokens)."""
    return make_tiny_parts(tmp_path_factory.mktemp('parts'), TinySpec(llm='qwen2', vit='300m'))


def parts_spec(parts, **overrides):
    """A from-parts model spec for `tiny_parts`."""
    spec = dict(vision_tower=dict(type='intern_vit', pretrained=str(parts['vision_tower'])),
                connector=dict(type='pixel_shuffle_mlp'), llm=dict(type='qwen2', pretrained=str(parts['llm'])),
                image_processor=dict(type='internvl_dynamic', image_size=56, max_tiles=2),
                template=dict(type='internvl2_5'))
    spec.update(overrides)
    return spec


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
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'remote_probe.py'), *args], cwd=tmp_path,
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


# --- real tiny training runs, shared by the training and conversion tests -----------------------
RECIPE = REPO / 'vlmtune' / 'recipes' / 'tiny' / 'lora_cpu.py'


@pytest.fixture(scope='session')
def ws(tiny_folder, tmp_path_factory):
    folder = tiny_folder('internlm2', '6b')
    root = tmp_path_factory.mktemp('train')
    data, images = make_colour_dataset(root, n=32)
    assert_equal_trained_tokens(build_train_dataset(folder, data, images, max_length=512, max_tiles=2))
    return {'folder': folder, 'data': data, 'images': images, 'root': root,
            'options': shortcut_options(folder, data, images)}


def folder_hash(folder):
    digest = hashlib.sha256()
    for path in sorted(folder.rglob('*')):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def xtuner_cmd(ws, work_dir, *extra):
    return [sys.executable, '-m', 'xtuner.tools.train', str(RECIPE), '--work-dir', str(work_dir),
            '--cfg-options', *ws['options'], *extra]


def vlmtune_cmd(ws, work_dir, *extra):
    return [sys.executable, '-m', 'vlmtune.cli', 'train', str(RECIPE), '--work-dir', str(work_dir),
            '--checkpoint', str(ws['folder']), '--data', str(ws['data']), '--images', str(ws['images']), *extra]


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def losses(work_dir):
    history = json.loads((work_dir / 'loss_history.json').read_text())['train']
    return {h['iter']: h['loss'] for h in history}


def assert_learns(trajectory):
    values = [trajectory[i] for i in sorted(trajectory)]
    assert len(values) == 20
    assert sum(values[-5:]) / 5 < sum(values[:5]) / 5 - 0.2, values


@pytest.fixture(scope='session')
def plain_run(ws):
    before = folder_hash(ws['folder'])
    work_dir = ws['root'] / 'plain'
    run(xtuner_cmd(ws, work_dir), ws['root'])
    assert folder_hash(ws['folder']) == before  # the base folder is never written
    return work_dir


@pytest.fixture(scope='session')
def zero2_run(ws):
    work_dir = ws['root'] / 'zero2'
    out = run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero2'), ws['root'])
    assert 'zero2_cpu.json' in out.stdout  # the CPU-safe variant was picked
    return work_dir


def assert_deepspeed_checkpoint_holds_trainable_only(work_dir):
    # ZeRO-2 writes mp_rank_00_model_states.pt, ZeRO-3 zero_pp_rank_0_mp_rank_00_model_states.pt.
    path = next((work_dir / 'iter_20.pth').glob('*model_states.pt'))
    states = torch.load(path, map_location='cpu', weights_only=False)['module']
    assert states and all('.lora_' in k or k.startswith('model.connector.') for k in states)




@pytest.fixture(scope='session')
def zero3_run(ws):
    work_dir = ws['root'] / 'zero3'
    out = run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero3'), ws['root'])
    assert 'zero3_cpu.json' in out.stdout
    return work_dir


@pytest.fixture(scope='session')
def llava_hubs(tmp_path_factory):
    """Tiny llava-hf / llava-next-hf folders built by transformers' own classes (`llava_tiny`)."""
    from llava_tiny import build_hubs
    return build_hubs(tmp_path_factory.mktemp('llava-hubs'))


@pytest.fixture(scope='session')
def llava_written(llava_hubs, tmp_path_factory):
    """Those folders read into our names and written back by our adapters (`llava_tiny.write_folders`)."""
    from llava_tiny import write_folders
    return write_folders(llava_hubs, tmp_path_factory.mktemp('llava-written'))


# --- one engine-width tiny model, its LoRA run, and one vLLM server for the serving tests ------------
ENGINE_SPEC = dict(llm='qwen2', llm_width=128)   # head_dim 32: what vLLM's CPU attention takes


@pytest.fixture(scope='session')
def engine_base(tmp_path_factory):
    return make_tiny_folder(tmp_path_factory.mktemp('engine') / 'tinyvl-base', TinySpec(**ENGINE_SPEC))


@pytest.fixture(scope='session')
def lora_run(engine_base, tmp_path_factory):
    """20 LoRA steps on the LLM only (connector frozen) of the engine model, converted merged (fp32)
    and as an adapter folder (`convert --adapter-only`)."""
    from vlmtune.cli import main
    root = tmp_path_factory.mktemp('adapter')
    data, images = make_colour_dataset(root, n=32)
    work, frozen = root / 'work', ['--cfg-options', 'model.projector=frozen']
    run([sys.executable, '-m', 'vlmtune.cli', 'train', str(RECIPE), '--work-dir', str(work), '--checkpoint',
         str(engine_base), '--data', str(data), '--images', str(images), *frozen], root)
    for out, extra in ((root / 'merged', ['--dtype', 'fp32']), (root / 'tinyvl-adapter', ['--adapter-only'])):
        assert main(['convert', str(RECIPE), str(work / 'iter_20.pth'), str(out), '--base', str(engine_base),
                     *extra, *frozen]) == 0
    return {'base': engine_base, 'merged': root / 'merged', 'adapter': root / 'tinyvl-adapter', 'root': root}


@pytest.fixture(scope='session')
def vllm_server(lora_run, tmp_path_factory):
    """`vlmtune serve` (the CLI, as users start it) of the engine model on vLLM (built on first use), the
    adapter beside it as 'tuned'."""
    from vlmtune.net import free_port
    from vlmtune.serve.engines import Server, vllm_env
    vllm_env()
    port = free_port()
    cmd = [sys.executable, '-m', 'vlmtune.cli', 'serve', str(lora_run['base']), '--engine', 'vllm', '--port', str(port),
           '--lora', f"tuned={lora_run['adapter']}"]
    server = Server(cmd, dict(os.environ), f'http://127.0.0.1:{port}/v1',
                    log_path=tmp_path_factory.mktemp('vllm') / 'serve.log').start()
    try:
        yield server
    finally:
        server.stop(grace=15)   # the CLI stops its engine first (SIGTERM, then SIGKILL after 5 s)
