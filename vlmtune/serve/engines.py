"""`vlmtune serve FOLDER`: a real engine's OpenAI-compatible server on a checkpoint folder — LMDeploy's
api_server where a GPU and lmdeploy are present, vLLM's CPU build elsewhere. vLLM lives in its own
virtual environment (vlmtune/side_envs.py makes it), built on first use under ~/.cache/vlmtune/engines
($VLMTUNE_ENGINES). The folder is checked first: an engine that cannot load
it is named with the reason and the fix, before minutes of start-up.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from ..net import free_port
from ..side_envs import ENGINES_DIR, vllm_env

# Seconds a server gets after SIGTERM before SIGKILL: uvicorn's graceful shutdown otherwise waits for
# every idle keep-alive client connection to close.
KEEPALIVE_GRACE_S = 5
# vLLM's CPU attention kernels exist for these head sizes only (head_dim 16 dies at the first forward).
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)
TURBOMIND_HEAD_DIMS = (64, 128)
# Architecture (config.json) -> the engines that load it. vLLM: run on its CPU build for each of our
# layouts by tests/test_serve_engines.py; LMDeploy: its documented support (TurboMind, PyTorch engine).
ENGINES_FOR = {
    'InternVLChatModel': ('vllm', 'turbomind', 'lmdeploy-pytorch'),          # layout internvl
    'InternVLForConditionalGeneration': ('vllm', 'lmdeploy-pytorch'),        # internvl_hf
    'LlavaForConditionalGeneration': ('vllm', 'lmdeploy-pytorch'),           # llava_hf
    'LlavaNextForConditionalGeneration': ('vllm', 'lmdeploy-pytorch'),       # llava_next_hf
}
class ServeError(ValueError):
    """A folder an engine cannot serve, or an engine that cannot start: the message says why and the fix."""


def folder_facts(folder) -> dict:
    from ..formats import layout_of
    folder = Path(folder)
    layout = layout_of(folder)  # a clear error for what is no checkpoint folder
    if not (folder / 'config.json').exists():
        raise ServeError(f'{folder}: the {layout} layout is ours alone (no config.json an engine reads); write it '
                         f'in a family layout first, e.g. vlmtune resave {folder} OUT --to internvl')
    config = json.loads((folder / 'config.json').read_text())
    llm = config.get('llm_config') or config.get('text_config') or config
    heads = llm.get('num_attention_heads')
    head_dim = llm.get('head_dim') or (llm['hidden_size'] // heads if heads and llm.get('hidden_size') else None)
    return {'folder': folder, 'layout': layout, 'architecture': (config.get('architectures') or ['?'])[0],
            'head_dim': head_dim}


def check_servable(folder, engine: str) -> dict:
    """engine: 'vllm' | 'turbomind' | 'lmdeploy-pytorch'. Returns the folder's facts or raises ServeError."""
    facts = folder_facts(folder)
    arch = facts['architecture']
    if engine not in ENGINES_FOR.get(arch, ()):
        able = sorted({a for a, engines in ENGINES_FOR.items() if engine in engines})
        raise ServeError(f"{folder}: {engine} does not load architecture {arch} (layout {facts['layout']}); it "
                         f"serves {', '.join(able)}. Write the model in such a layout first, e.g. "
                         f"vlmtune resave {folder} OUT --to internvl")
    from ..formats import read_spec
    llm = read_spec(folder).component('llm')
    if engine not in llm.engines:  # the LLM family's entry says which engines have its kernels
        serving = ', '.join(llm.engines) or 'none yet; chat with `vlmtune chat` or the torch pipeline'
        raise ServeError(f"{folder}: {engine} has no {llm.family} LLM (engines serving it: {serving}; "
                         f"the family's entry in vlmtune/model/llm/ says why)")
    allowed = {'vllm': VLLM_CPU_HEAD_DIMS, 'turbomind': TURBOMIND_HEAD_DIMS}.get(engine)
    if allowed and facts['head_dim'] not in allowed:
        raise ServeError(f"{folder}: the LLM's head_dim is {facts['head_dim']}; {engine} takes "
                         f"{', '.join(map(str, allowed))} (a model meant for this engine needs such a width)")
    return facts


def pick_engine(engine: str = 'auto') -> str:
    if engine != 'auto':
        if engine not in ('vllm', 'lmdeploy'):
            raise ServeError(f'engine {engine!r}: choose auto, lmdeploy or vllm')
        if engine == 'lmdeploy' and not torch.cuda.is_available():
            raise ServeError('LMDeploy has no CPU engine (its PyTorch engine and TurboMind need a GPU); use --engine vllm')
        return engine
    from .pipeline import lmdeploy_available
    return 'lmdeploy' if torch.cuda.is_available() and lmdeploy_available() else 'vllm'


def served_chat_template(folder, out_dir) -> Path:
    """vLLM renders chat messages with the folder's template and adds no special tokens; a tokenizer
    that puts BOS first in training (Llama / Vicuna: LLaVA) would lose it. Such folders are served with
    their template behind BOS (a file beside, the folder untouched) — written so that the text tokenizes
    to what the tokenizer gives with its special tokens (SentencePiece's leading '▁' included); None
    when not needed."""
    from ..formats.tokenizers import load_tokenizer
    tokenizer = load_tokenizer(folder)
    ids = tokenizer('x').input_ids
    if tokenizer.bos_token_id is None or not ids or ids[0] != tokenizer.bos_token_id:
        return None
    template = tokenizer.chat_template
    chat_json = Path(folder) / 'chat_template.json'
    if chat_json.exists():  # the processor's, which vLLM prefers for multimodal models
        template = json.loads(chat_json.read_text())['chat_template']
    if not template:
        raise ServeError(f'{folder}: no chat template to serve with')
    probe = [{'role': 'user', 'content': [{'type': 'text', 'text': 'Hello there'}]}]
    rendered = tokenizer.apply_chat_template(probe, chat_template=template, tokenize=False, add_generation_prompt=True)
    wanted = tokenizer(rendered).input_ids
    for prefix in ('{{ bos_token }}', "{{ bos_token + ' ' }}"):  # an expression: the template's {%- keeps it
        text = tokenizer.apply_chat_template(probe, chat_template=prefix + template, tokenize=False,
                                             add_generation_prompt=True)
        if tokenizer(text, add_special_tokens=False).input_ids == wanted:
            path = Path(out_dir) / f'{Path(folder).resolve().name}.chat_template.jinja'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(prefix + template)
            return path
    raise ServeError(f'{folder}: no served chat template reproduces the tokenizer\'s own BOS handling')


def vllm_command(folder, host='127.0.0.1', port=8000, max_model_len=4096, max_images=1, lora=None, kv_cache_gib=1,
                 extra=()) -> tuple:
    """(argv, environment) for vLLM's OpenAI server on CPU. lora: {name: adapter folder}."""
    from ..formats import read_spec
    folder = Path(folder).resolve()
    launcher = Path(__file__).with_name('vllm_launch.py')  # vLLM's server with the folder's EXIF rule
    cmd = [str(vllm_env()), str(launcher), '--model', str(folder),
           '--served-model-name', folder.name, '--trust-remote-code', '--host', host, '--port', str(port),
           '--dtype', 'float32', '--max-model-len', str(max_model_len), '--enforce-eager',
           '--limit-mm-per-prompt', json.dumps({'image': max_images})]
    template = served_chat_template(folder, ENGINES_DIR / 'chat_templates')
    if template:
        cmd += ['--chat-template', str(template)]
    if lora:
        cmd += ['--enable-lora', '--max-lora-rank', '64', '--lora-modules',
                *[f'{name}={Path(path).resolve()}' for name, path in lora.items()]]
    # VLLM_ENABLE_V1_MULTIPROCESSING=0: the engine core runs in the server's process; on a CPU host this
    # starts in seconds instead of ~20 s (no worker spawn and handshake) and serves concurrent clients alike.
    env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND='nobind', VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib),
               VLLM_ENABLE_V1_MULTIPROCESSING='0', VLMTUNE_EXIF_RULE=read_spec(folder).exif_rule)
    env.pop('PYTHONPATH', None)  # our packages are not vLLM's
    return cmd + list(extra), env


def lmdeploy_command(folder, host='127.0.0.1', port=8000, backend='turbomind') -> list:
    return [sys.executable, '-m', 'lmdeploy', 'serve', 'api_server', str(folder), '--server-name', host,
            '--server-port', str(port), '--backend', backend]


class Server:
    """A server process: `with Server(cmd, env, url) as s:` waits until it answers, stops it at the end."""

    def __init__(self, cmd, env, url, log_path=None):
        self.cmd, self.env, self.url = cmd, env, url
        self.log_path = Path(log_path) if log_path else None
        self.process = None

    def start(self, timeout=300):
        log = open(self.log_path, 'w') if self.log_path else None  # None: the server writes to our terminal
        self.process = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text()[-3000:] if self.log_path else ''
                raise ServeError(f'the server exited with {self.process.returncode} before serving:\n{tail}')
            try:
                with urllib.request.urlopen(self.url.rsplit('/v1', 1)[0] + '/health', timeout=2):
                    return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise ServeError(f'the server did not answer within {timeout} s')

    def stop(self, grace=KEEPALIVE_GRACE_S):
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def server_for(folder, engine='auto', host='127.0.0.1', port=None, max_model_len=4096, lora=None, log_path=None):
    """The checked, not yet started Server for a folder."""
    engine = pick_engine(engine)
    port = port or free_port()
    if engine == 'vllm':
        check_servable(folder, 'vllm')
        cmd, env = vllm_command(folder, host, port, max_model_len, lora=lora)
    else:
        try:
            check_servable(folder, 'turbomind')
            backend = 'turbomind'
        except ServeError:
            check_servable(folder, 'lmdeploy-pytorch')
            backend = 'pytorch'
        cmd, env = lmdeploy_command(folder, host, port, backend), dict(os.environ)
    return Server(cmd, env, f'http://{host}:{port}/v1', log_path)


def serve(folder, engine='auto', host='127.0.0.1', port=8000, max_model_len=4096, lora=None) -> int:
    """Foreground: start, say where it listens and how to talk to it, run until Ctrl-C."""
    server = server_for(folder, engine, host, port, max_model_len, lora)
    if host not in ('127.0.0.1', 'localhost', '::1'):
        print(f'note: listening on {host}: reachable from other machines, without authentication', flush=True)
    print(f'starting: {" ".join(server.cmd)}', flush=True)
    # A SIGTERM to us (a service manager, a test) stops the engine too, instead of orphaning it. The
    # handler only signals the engine: waiting on it there would re-enter the wait the main loop is in.
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: (stopping.append(time.time()),
                                              server.process and server.process.terminate()))
    server.start(timeout=900)
    print(f'\nserving {folder} at {server.url} (OpenAI API). Try:\n  vlmtune chat --api {server.url}\n'
          f'  python -c "from openai import OpenAI; c = OpenAI(base_url=\'{server.url}\', api_key=\'-\'); '
          f'print(c.models.list().data[0].id)"', flush=True)
    try:
        while True:
            try:
                code = server.process.wait(timeout=1)
                return 143 if stopping else code
            except subprocess.TimeoutExpired:
                if stopping and time.time() - stopping[0] > KEEPALIVE_GRACE_S:
                    server.process.kill()
    except KeyboardInterrupt:
        server.stop()
        return 130
