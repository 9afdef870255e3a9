"""LLaVA's two stages on CPU, tiny: stage 1 (`llava_pretrain_cpu`: plain captions, the fresh
mlp2x_gelu projector alone) leaves the CLIP tower and the LLM bit-identical; stage 2
(`llava_lora_cpu`: vicuna_v1, pad, LoRA on the LLM + the projector from stage 1's work dir); convert
to llava_hf; plain transformers loads the folder and answers; held-out accuracy rises."""
import json
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from safetensors.torch import load_file

from helpers.probes import REPO
from helpers.training_data import make_colour_dataset
from vlmtune.data.collate import pad_collate
from vlmtune.bench.run import run_benchmark
from vlmtune.engine.recipes import lookup
from vlmtune.formats import layout_of, save
from vlmtune.engine.model_source import build_model
from vlmtune.serve import pipeline
from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_parts

pytestmark = pytest.mark.trainings

HF_PROBE = '''
import json, sys
import hide_vlmtune  # noqa: F401
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration
folder, image = sys.argv[1], sys.argv[2]
model = LlavaForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32).eval()
processor = AutoProcessor.from_pretrained(folder)
messages = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'What colour is it?'}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=Image.open(image), text=prompt, return_tensors='pt')
out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
print(json.dumps({'answer': processor.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)}))
'''


def run(cmd, cwd):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def captions(src, out):
    """The Q&A rows as stage-1 captions (LCS-558K shape: one human turn, the caption as the answer)."""
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    for row in rows:
        row['conversations'][0]['value'] = '<image>\nRender a clear and concise summary of the photo.'
    out.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return out


def test_stage_one_moves_the_projector_alone(tmp_path):
    """In memory, with the shipped stage-1 recipe's model and dataset: tower and LLM weights and buffers
    stay bit-identical over optimizer steps; every projector weight moves."""
    parts = make_tiny_llava_parts(tmp_path / 'parts', spec=TinyLlavaSpec(image_size=56))
    train, images = make_colour_dataset(tmp_path / 'data', n=4, seed=0)
    cfg = Config.fromfile(str(lookup('llava_pretrain_cpu')))
    spec = {**cfg.model.parts, **{part: {**cfg.model.parts[part], 'pretrained': str(parts[part])}
                                  for part in ('vision_tower', 'llm')}}
    model_cfg = {k: v for k, v in cfg.model.items() if k != 'type'}
    data_cfg = {k: v for k, v in cfg.train_dataloader.dataset.items() if k != 'type'}
    wrapper = cfg.model.type(**{**model_cfg, 'parts': spec})
    dataset = cfg.train_dataloader.dataset.type(**{**data_cfg, 'parts': spec, 'data_path': str(captions(
        train, tmp_path / 'captions.jsonl')), 'image_root': str(images)})
    batch = pad_collate([dataset[i] for i in range(4)], 0)
    before = {k: v.detach().clone() for k, v in wrapper.model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        wrapper(batch, mode='loss')['loss'].backward()
        optimizer.step()
        optimizer.zero_grad()
    after = wrapper.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = [k for k in before if k.startswith(('vision_tower.', 'llm.'))]
    assert frozen and not changed & set(frozen)
    assert changed == {k for k in before if k.startswith('connector.')}


def test_two_stages_train_convert_and_serve(tmp_path):
    parts = make_tiny_llava_parts(tmp_path / 'parts', spec=TinyLlavaSpec(image_size=56))
    train, images = make_colour_dataset(tmp_path / 'data', n=48, seed=0, name='train.jsonl')
    val, _ = make_colour_dataset(tmp_path / 'data', n=24, seed=1, name='val.jsonl')
    caps = captions(train, tmp_path / 'data' / 'captions.jsonl')
    flags = ['--vision-tower', parts['vision_tower'], '--llm', parts['llm'], '--images', images]
    vlmtune = [sys.executable, '-m', 'vlmtune.cli']

    stage1 = tmp_path / 'stage1'
    run(vlmtune + ['train', 'llava_pretrain_cpu', '--work-dir', stage1, '--data', caps, *flags], tmp_path)
    trained = torch.load(stage1 / 'iter_60.pth', map_location='cpu', weights_only=False)['state_dict']
    assert trained and all(k.startswith('model.connector.') for k in trained)  # tower and LLM untouched

    stage2 = tmp_path / 'stage2'
    connector = [f'{where}.parts.connector.pretrained={stage1}' for where in ('model', 'train_dataloader.dataset')]
    run(vlmtune + ['train', 'llava_lora_cpu', '--work-dir', stage2, '--data', train, *flags,
                   '--cfg-options', *connector], tmp_path)
    out = tmp_path / 'llava-hf'
    converted = run(vlmtune + ['convert', 'llava_lora_cpu', stage2 / 'iter_60.pth', out, '--dtype', 'fp32',
                               *flags[:4], '--cfg-options', connector[0]], tmp_path)
    assert 'self-check PASS' in converted.stdout and layout_of(out) == 'llava_hf'
    # the stage-2 folder's tower is the CLIP folder's, bit for bit
    tower = load_file(str(parts['vision_tower'] / 'model.safetensors'))
    saved = load_file(str(out / 'model.safetensors'))
    assert all(torch.equal(saved['vision_tower.' + k], v) for k, v in tower.items())

    (tmp_path / 'probe.py').write_text(HF_PROBE)
    env_run = subprocess.run([sys.executable, tmp_path / 'probe.py', out, images / 'val_000.png'],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, 'PYTHONPATH': str(REPO / 'tests' / 'probes'), 'HF_HUB_OFFLINE': '1'})
    assert env_run.returncode == 0, env_run.stderr[-3000:]
    answer = json.loads(env_run.stdout.strip().splitlines()[-1])['answer']
    assert answer.strip() in ('green', 'blue', 'white'), answer

    base_model, base_tokenizer = build_model(spec=dict(
        vision_tower=dict(type='clip', pretrained=str(parts['vision_tower'])), connector=dict(type='mlp2x_gelu'),
        llm=dict(type='llama', pretrained=str(parts['llm'])), image_processor=dict(type='pad', image_size=56),
        template=dict(type='vicuna_v1')))
    base = save(base_model, base_tokenizer, tmp_path / 'base', layout='llava_hf', dtype='fp32')
    before, after = (run_benchmark('conversations', val, pipeline(folder, backend='torch'), images, batch_size=1,
                                   max_new_tokens=4, progress=False)[0]['value'] for folder in (base, out))
    print(f'held-out colour accuracy: before {before:.1%}, after {after:.1%}')
    assert after > before + 0.5, (before, after)
