"""Unmerged LoRA: `vlmtune convert --adapter-only` writes a PEFT adapter folder for the base; the torch
pipeline and vLLM (--enable-lora) serve base + adapter with the merged folder's greedy answers."""
import json

import pytest
from helpers.probes import REPO
from vlmtune.bench.samples import swatch
from vlmtune.cli import main
from vlmtune.serve import GenerationConfig, pipeline
from vlmtune.serve.api_client import ApiPipeline, data_url

pytestmark = pytest.mark.engines

RECIPE = REPO / 'vlmtune' / 'recipes' / 'tiny' / 'lora_cpu.py'
GEN = GenerationConfig(max_new_tokens=6)
QUESTIONS = [('What colour is it?', swatch(c)) for c in ('green', 'blue', 'white', 'red')]


def test_adapter_folder_is_a_peft_adapter_naming_the_base(lora_run):
    config = json.loads((lora_run['adapter'] / 'adapter_config.json').read_text())
    base = config['base_model_name_or_path']   # relative to the adapter: the two folders move together
    assert not base.startswith('/') and (lora_run['adapter'] / base).resolve() == lora_run['base'].resolve()
    assert config['peft_type'] == 'LORA'
    assert set(config['target_modules']) >= {'q_proj', 'v_proj'}
    from safetensors.torch import load_file
    keys = list(load_file(str(lora_run['adapter'] / 'adapter_model.safetensors')))
    # Named as the base folder's own modules (what PEFT and vLLM see in the internvl layout).
    assert all(k.startswith('base_model.model.language_model.model.layers.') for k in keys), keys[:3]
    assert not (lora_run['adapter'] / 'config.json').exists()


def test_a_moved_pair_of_folders_still_loads_without_peft_warnings(lora_run, tmp_path):
    import shutil
    import warnings
    moved = tmp_path / 'moved'
    shutil.copytree(lora_run['base'], moved / lora_run['base'].name)
    shutil.copytree(lora_run['adapter'], moved / 'adapters' / lora_run['adapter'].name)
    (moved / 'adapters' / lora_run['adapter'].name / 'adapter_config.json').write_text(
        (lora_run['adapter'] / 'adapter_config.json').read_text().replace(
            json.loads((lora_run['adapter'] / 'adapter_config.json').read_text())['base_model_name_or_path'],
            f"../../{lora_run['base'].name}"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        pipe = pipeline(moved / 'adapters' / lora_run['adapter'].name, backend='torch')
    assert not [w for w in caught if 'base_model_name_or_path' in str(w.message)]
    assert pipe.batch_answers(QUESTIONS[:1], GEN) == pipeline(lora_run['adapter'], backend='torch').batch_answers(
        QUESTIONS[:1], GEN)


def test_torch_pipeline_answers_with_base_plus_adapter_as_merged(lora_run):
    merged = pipeline(lora_run['merged'], backend='torch').batch_answers(QUESTIONS, GEN)
    adapted = pipeline(lora_run['adapter'], backend='torch').batch_answers(QUESTIONS, GEN)
    base = pipeline(lora_run['base'], backend='torch').batch_answers(QUESTIONS, GEN)
    assert adapted == merged and adapted != base, (adapted, merged, base)


def test_vllm_serves_the_adapter_beside_the_base(lora_run, vllm_server):
    from test_serve_engines import decoded
    merged_pipe = pipeline(lora_run['merged'], backend='torch')
    merged = merged_pipe.batch_answers(QUESTIONS, GEN)
    base = pipeline(lora_run['base'], backend='torch').batch_answers(QUESTIONS, GEN)
    answers = {}
    for name in ('tuned', 'tinyvl-base'):   # vlmtune serve BASE --lora tuned=ADAPTER: both served
        api = ApiPipeline(vllm_server.url, model=name)
        answers[name] = []
        for text, image in QUESTIONS:
            reply = api.client.chat.completions.create(
                model=name, max_tokens=GEN.max_new_tokens, temperature=0, extra_body={'return_token_ids': True},
                messages=[{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': data_url(image)}},
                                                       {'type': 'text', 'text': text}]}])
            answers[name].append(decoded(merged_pipe, reply.choices[0].model_extra['token_ids']))
    assert answers['tuned'] == merged and answers['tinyvl-base'] == base, answers


def test_adapter_only_refuses_a_run_that_trained_more_than_llm_lora(plain_run, ws, tmp_path, capsys):
    # plain_run trained the connector in full beside the LLM's LoRA.
    assert main(['convert', str(RECIPE), str(plain_run / 'iter_20.pth'), str(tmp_path / 'a'), '--base',
                 str(ws['folder']), '--adapter-only']) == 2
    assert 'also trained connector' in capsys.readouterr().err and not (tmp_path / 'a').exists()
