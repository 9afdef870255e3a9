"""Session fixtures: tiny folders and parts built once, the real tiny training runs several tests read,
llava-hf hub stand-ins, and the serving tests' engine model and vLLM server. Helpers live in tests/helpers;
the owner-code probes (run in a fresh interpreter, vlmtune hidden) in tests/probes."""
import os
import sys

import pytest

from helpers.training import RECIPE, run, vlmtune_cmd, xtuner_cmd, folder_hash
from helpers.training_data import assert_equal_trained_tokens, make_colour_dataset
from vlmtune.engine import build_train_dataset
from vlmtune.engine.launch import shortcut_options
from vlmtune.tiny import TinySpec, make_tiny_folder, make_tiny_parts


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


# --- real tiny training runs, shared by the training and conversion tests -----------------------


@pytest.fixture(scope='session')
def ws(tiny_folder, tmp_path_factory):
    folder = tiny_folder('internlm2', '6b')
    root = tmp_path_factory.mktemp('train')
    data, images = make_colour_dataset(root, n=32)
    assert_equal_trained_tokens(build_train_dataset(folder, data, images, max_length=512, max_tiles=2))
    return {'folder': folder, 'data': data, 'images': images, 'root': root,
            'options': shortcut_options(folder, data, images)}


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


@pytest.fixture(scope='session')
def zero3_run(ws):
    work_dir = ws['root'] / 'zero3'
    out = run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero3'), ws['root'])
    assert 'zero3_cpu.json' in out.stdout
    return work_dir


@pytest.fixture(scope='session')
def llava_hubs(tmp_path_factory):
    """Tiny llava-hf / llava-next-hf folders built by transformers' own classes (`llava_tiny`)."""
    from helpers.llava_tiny import build_hubs
    return build_hubs(tmp_path_factory.mktemp('llava-hubs'))


@pytest.fixture(scope='session')
def llava_written(llava_hubs, tmp_path_factory):
    """Those folders read into our names and written back by our adapters (`llava_tiny.write_folders`)."""
    from helpers.llava_tiny import write_folders
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
    work, frozen = root / 'work', ['--cfg-options', 'model.connector=frozen']
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
