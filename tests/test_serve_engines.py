"""`vlmtune serve` on vLLM's CPU build (its own environment, built on first use), through the `openai`
client: single and multi-turn, images as data URLs, streaming, 16 concurrent clients, bad requests; the
answers equal the in-process pipeline's (vLLM's token ids decoded by our tokenizer, prompts token for
token). And which of our layouts vLLM loads, answering as we do (the engine x layout table)."""
import json
import subprocess
import sys
import time

import httpx
import pytest
import torch
from PIL import Image

from vlmtune.bench.samples import COLOURS, swatch
from vlmtune.cli import main
from vlmtune.serve import GenerationConfig, pipeline
from vlmtune.serve.api_client import ApiPipeline, data_url
from vlmtune.serve.engines import ServeError, check_servable, served_chat_template
from vlmtune.side_envs import vllm_env
from vlmtune.tiny import TinyLlavaSpec, TinySpec, make_tiny_folder, make_tiny_llava_folder

pytestmark = pytest.mark.engines

GEN = GenerationConfig(max_new_tokens=6)
ENGINE_WIDTH = dict(llm_width=128)   # head_dim 32: what vLLM's CPU attention takes


@pytest.fixture(scope='module')
def folder(engine_base):
    return engine_base


@pytest.fixture(scope='module')
def server(vllm_server):
    return vllm_server


@pytest.fixture(scope='module')
def api(server, folder):
    api = ApiPipeline(server.url)
    assert api.model == folder.name   # the base is listed first; the served adapter ('tuned') after it
    return api


@pytest.fixture(scope='module')
def pipe(folder):
    return pipeline(folder, backend='torch')


def decoded(pipe, ids):
    """vLLM's generated ids as our pipeline turns ids into an answer (the family's added tokens kept as text)."""
    from vlmtune.model.vlm import decode_answers
    end = pipe.model.template.end_token
    return decode_answers(pipe.tokenizer, [torch.as_tensor(ids)])[0].split(end)[0].strip()


def ask(api, messages, max_tokens=6):
    reply = api.client.chat.completions.create(model=api.model, messages=messages, max_tokens=max_tokens,
                                               temperature=0, extra_body={'return_token_ids': True})
    return reply, reply.choices[0].model_extra['token_ids'], reply.model_extra['prompt_token_ids']


def our_prompt_ids(pipe, question, image):
    tiles = pipe.image_processor.process(image, 1)
    query = pipe.model.image_tokens.expand(pipe.model.prompt('<image>\n' + question), [tiles.shape[0]])
    return pipe.model.template.chat_inputs(pipe.tokenizer, query)['input_ids'][0].tolist()


def images(n=16):
    names = list(COLOURS)
    return [Image.new('RGB', (56 + 28 * (i % 4), 56 + 28 * (i // 4 % 3)), COLOURS[names[i % len(names)]])
            for i in range(n)]


def test_single_turn_with_a_data_url_image_matches_the_pipeline(api, pipe):
    image = Image.new('RGB', (150, 60), (200, 40, 40))   # 3 tiles + thumbnail
    _, ids, prompt_ids = ask(api, [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': data_url(image)}}, {'type': 'text', 'text': 'What colour?'}]}])
    assert prompt_ids == our_prompt_ids(pipe, 'What colour?', image)   # same template, tiles and image tokens
    assert decoded(pipe, ids) == pipe.chat(('What colour?', image), gen_config=GEN).response.text


def test_multi_turn_messages_and_streaming(api, pipe):
    image = swatch('blue')
    ours = pipe.chat(('What colour?', image), gen_config=GEN)
    theirs = api.chat(('What colour?', image), gen_config=GEN)
    ours = pipe.chat('And the shape?', session=ours, gen_config=GEN)
    streamed = ''.join(api.chat('And the shape?', session=theirs, gen_config=GEN, stream=True))
    assert streamed == theirs.response.text and [len(theirs.history), len(ours.history)] == [2, 2]
    # The second turn went as messages: user (image + text), assistant, user.
    assert [m['role'] for m in theirs.backend_session] == ['user', 'assistant', 'user', 'assistant']
    _, ids, _ = ask(api, theirs.backend_session[:3])
    assert decoded(pipe, ids) == ours.response.text


def test_sixteen_concurrent_clients_each_get_their_own_answer(api, pipe, capsys):
    prompts = [(f'Colour {i}?', image) for i, image in enumerate(images(16))]
    started = time.perf_counter()
    sequential = [api.chat(p, gen_config=GEN).response.text for p in prompts]
    seconds_sequential = time.perf_counter() - started
    started = time.perf_counter()
    concurrent = api.batch_answers(prompts, GEN, workers=16)
    seconds_concurrent = time.perf_counter() - started
    assert concurrent == sequential
    ours = pipe.batch_answers(prompts, GEN)
    # Compared as our tokenizer reads vLLM's ids (its text drops a trailing partial UTF-8 character).
    for (text, image), answer in zip(prompts, ours):
        _, ids, _ = ask(api, [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': data_url(image)}},
                                                            {'type': 'text', 'text': text}]}])
        assert decoded(pipe, ids) == answer
    with capsys.disabled():
        print(f'\n[serve] 16 requests: sequential {seconds_sequential:.2f} s, 16 concurrent clients '
              f'{seconds_concurrent:.2f} s ({seconds_sequential / seconds_concurrent:.1f}x)')


def test_bad_requests_are_4xx_json_and_the_server_keeps_serving(api, server):
    long_text = 'word ' * 5000
    bodies = [{'model': api.model},                                                        # no messages
              {'model': api.model, 'messages': [{'role': 'user', 'content': [               # broken image
                  {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,AAAA'}},
                  {'type': 'text', 'text': 'x'}]}]},
              {'model': api.model, 'messages': [{'role': 'user', 'content': long_text}]}]  # over the limit
    for body in bodies:
        response = httpx.post(server.url + '/chat/completions', json=body, timeout=120)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()['error']['message']
    assert api.chat('Still there?', gen_config=GEN).response.text is not None
    assert server.process.poll() is None


def test_chat_cli_talks_to_the_server(server):
    result = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'chat', '--api', server.url, '--max-new-tokens', '4'],
                            input='Hello\n/reset\nHello\n/exit\n', capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.startswith('>>> assistant: ')]
    assert len(answers) == 2 and answers[0] == answers[1], result.stdout   # /reset: the same first turn again


def test_unservable_folders_are_refused_with_the_reason(tmp_path, capsys):
    narrow = make_tiny_folder(tmp_path / 'narrow', TinySpec(llm='qwen2'))   # head_dim 16
    with pytest.raises(ServeError, match="head_dim is 16; vllm takes 32, 64"):
        check_servable(narrow, 'vllm')
    with pytest.raises(ServeError, match="head_dim is 32; turbomind takes 64, 128"):
        check_servable(make_tiny_folder(tmp_path / 'w32', TinySpec(llm='qwen2', **ENGINE_WIDTH)), 'turbomind')
    phi3 = make_tiny_folder(tmp_path / 'phi3', TinySpec(llm='phi3', **ENGINE_WIDTH))   # TurboMind has no Phi-3
    with pytest.raises(ServeError, match='turbomind has no phi3 LLM .*vllm, lmdeploy-pytorch'):
        check_servable(phi3, 'turbomind')
    from vlmtune.formats import save
    from vlmtune.tiny.compose import compose_tiny
    gemma = save(*compose_tiny('clip', 'mlp2x_gelu', 'gemma', 'square', shape=TinySpec(**ENGINE_WIDTH)),
                 tmp_path / 'gemma', dtype='fp32')   # llava_hf holds it; vLLM would not scale its image features
    with pytest.raises(ServeError, match="vllm has no gemma LLM .*none yet.*the family's entry"):
        check_servable(gemma, 'vllm')
    own = make_tiny_folder(tmp_path / 'own', TinySpec(llm='qwen2', **ENGINE_WIDTH), layout='vlmtune')
    with pytest.raises(ServeError, match='the vlmtune layout is ours alone .*--to internvl'):
        check_servable(own, 'vllm')
    assert main(['serve', str(narrow), '--engine', 'vllm']) == 2   # refused before any engine starts
    assert 'head_dim is 16' in capsys.readouterr().err


# --- engine x layout: vLLM's own engine on each of our layouts --------------------------------------
def layout_folders(root):
    spec = TinySpec(llm='qwen2', **ENGINE_WIDTH)
    return {'internvl (InternLM2)': make_tiny_folder(root / 'iv-internlm2', TinySpec(llm='internlm2', **ENGINE_WIDTH)),
            'internvl (Qwen3)': make_tiny_folder(root / 'iv-qwen3', TinySpec(llm='qwen3', **ENGINE_WIDTH)),
            'internvl_hf (Qwen2)': make_tiny_folder(root / 'ivhf-qwen2', spec, layout='internvl_hf'),
            'llava_hf (Llama)': make_tiny_llava_folder(root / 'llava', TinyLlavaSpec()),
            'llava_next_hf (Llama)': make_tiny_llava_folder(root / 'llava-next', TinyLlavaSpec(), next_=True),
            **family_folders(root, covered={'internlm2', 'qwen3', 'qwen2', 'llama'})}


def family_folders(root, covered) -> dict:
    """{name: folder} for every other LLM family whose entry says vLLM serves it: the family in llava_hf
    (CLIP + mlp2x_gelu), else in the internvl layout. A family neither holds must not claim vLLM."""
    from vlmtune.formats import layout_of, save
    from vlmtune.model.llm import REGISTRY
    from vlmtune.tiny.compose import compose_tiny
    out = {}
    for family in REGISTRY.names():
        if family in covered or 'vllm' not in REGISTRY.get(family).engines:
            continue
        model, tokenizer = compose_tiny('clip', 'mlp2x_gelu', family, 'square', shape=TinySpec(**ENGINE_WIDTH))
        folder = save(model, tokenizer, root / f'llava-{family}', dtype='fp32')
        if layout_of(folder) != 'llava_hf':
            folder = make_tiny_folder(root / f'iv-{family}', TinySpec(llm=family, **ENGINE_WIDTH))
        check_servable(folder, 'vllm')  # the layout's and the entry's facts agree that vLLM takes it
        out[f'{layout_of(folder)} ({family})'] = folder
    return out


def test_vllm_serves_each_layout_as_the_pipeline_answers(tmp_path, capsys):
    folders = layout_folders(tmp_path)
    swatch('green').save(tmp_path / 'green.png')
    requests = [{'text': 'What colour is it?', 'image': str(tmp_path / 'green.png')}, {'text': 'Hello', 'image': None}]
    (tmp_path / 'requests.json').write_text(json.dumps(requests))
    arguments = []
    for folder in folders.values():
        template = served_chat_template(folder, tmp_path / 'templates')
        arguments.append(f'{folder}={template}' if template else str(folder))
    from vlmtune.serve.engines import vllm_command
    _, env = vllm_command(next(iter(folders.values())))
    result = subprocess.run([str(vllm_env()), str(__import__('pathlib').Path(__file__).parent / 'probes' / 'vllm_probe.py'),
                             str(tmp_path / 'out.json'), str(tmp_path / 'requests.json'), *arguments],
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads((tmp_path / 'out.json').read_text())
    table = []
    for name, folder in folders.items():
        entry = served[str(folder)]
        assert 'error' not in entry, (name, entry.get('trace'))
        pipe = pipeline(folder, backend='torch')
        gen = GenerationConfig(max_new_tokens=8)
        ours = [pipe.chat((r['text'], r['image']) if r['image'] else r['text'], gen_config=gen).response.text
                for r in requests]
        assert [decoded(pipe, ids) for ids in entry['token_ids']] == ours, name
        table.append(f"| {name} | loads in {entry['load_s']} s, greedy answers equal |")
    with capsys.disabled():
        print('\n| layout (LLM) | vLLM CPU |\n|---|---|\n' + '\n'.join(table))


def test_the_vllm_env_fix_is_a_standalone_module():
    """sitecustomize.py of vLLM's environment runs there alone: only absolute imports, of torch."""
    import ast
    from vlmtune.side_envs import TORCHVISION_CPU_FIX
    tree = ast.parse(TORCHVISION_CPU_FIX)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(type(n).__name__, getattr(n, 'level', 0), [a.name for a in n.names]) for n in imports] == \
        [('Import', 0, ['torch'])]
