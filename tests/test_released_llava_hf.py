"""A whole released llava-hf checkpoint of every LLM family the llava_hf layout holds (generated from the registry:
a family registered tomorrow is covered with no test edit; Llama is LLaVA-1.5's own): a tiny
LlavaForConditionalGeneration built and saved by transformers with its processor is read by the package,
re-saved by `vlmtune resave` (fp32 kept) with transformers' logits unchanged, trained 2 iterations with
`vlmtune train llava15_7b_lora --checkpoint FOLDER` (the folder supplies the whole composition; the recipe
only what trains), converted, and loaded by transformers with the package's logits. Where the layout's owner_caveat
speaks, the folder is built and run by the transformers its owner_env names, and resave says why: OPT (4.48's Llava
passes cache_position, which 4.48's OPT does not take: 4.57), Phi-2 (only 4.48.1 to 4.51 keep its head bias: 4.51)."""
import os
import subprocess
import sys

import pytest
import torch
from transformers import CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaProcessor

from helpers.llava_tiny import HUB_TEMPLATE, image, messages
from helpers.training_data import make_colour_dataset
from helpers.owners import owner_logits
from helpers.probes import REPO
from vlmtune.formats import layout_of, load, owner_caveat, owner_env
from vlmtune.side_envs import side_env
from vlmtune.formats.common import stored_dtype
from vlmtune.model.llm import REGISTRY as LLMS
from vlmtune.tiny import TinySpec, compose_tiny, llm_config_dict
from vlmtune.tiny.compose import tiny_tokenizer

pytestmark = pytest.mark.trainings
SIZE, PATCH = 56, 14
HUB_PROBE = REPO / 'tests' / 'probes' / 'llava_hub_probe.py'
FAST = ['--cfg-options', 'train_dataloader.num_workers=0', 'train_dataloader.batch_size=2']


def llava_holds(family) -> bool:
    model, _ = compose_tiny('clip', 'mlp2x_gelu', family, 'pad', 'vicuna_v1')
    from vlmtune.formats import holds
    return holds('llava_hf', model.spec)


FAMILIES = [f for f in LLMS.names() if LLMS.get(f).in_transformers and llava_holds(f)]


def build_hub(family, folder, tmp_path):
    """What llava-hf publishes, with transformers' own classes: config, weights (made and saved by the transformers
    that runs the folder right: the layout's owner_env where it names one), processor, chat template."""
    tokenizer = tiny_tokenizer(family, 'vicuna_v1')
    if '<image>' not in tokenizer.get_vocab():
        tokenizer.add_tokens(['<image>'], special_tokens=True)
    text = llm_config_dict(TinySpec(llm=family, llm_width=64), tokenizer)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=SIZE, patch_size=PATCH, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=text, vision_feature_layer=-2,
                         image_token_index=tokenizer.convert_tokens_to_ids('<image>'), image_seq_length=16)
    config.save_pretrained(folder)
    model, _ = compose_tiny('clip', 'mlp2x_gelu', family, 'pad', 'vicuna_v1')
    env = owner_env('llava_hf', model.spec)
    environ = dict(os.environ, PYTHONPATH=str(side_env(env)) if env else '', HF_HUB_OFFLINE='1')
    done = subprocess.run([sys.executable, str(HUB_PROBE), str(folder)], cwd=HUB_PROBE.parent, env=environ,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={'shortest_edge': SIZE},
                                                                  crop_size={'height': SIZE, 'width': SIZE}),
                               tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy='default',
                               num_additional_image_tokens=1, chat_template=HUB_TEMPLATE)
    processor.save_pretrained(folder)
    return processor


def their_logits(folder, inputs, tmp_path, family):
    """transformers' Llava on the folder, nothing missing or unexpected: the installed one, or the one the
    layout's owner_env names (OPT: 4.48's Llava passes cache_position; Phi-2: 4.51 keeps the head bias)."""
    result, = owner_logits([('llava_hf', folder, dict(inputs), family)], tmp_path)
    assert 'error' not in result and not result['missing_keys'], result
    return result['logits']


def vlmtune(*args, cwd):
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.mark.parametrize('family', FAMILIES)
def test_released_llava_hf_checkpoint_trains_with_the_llava_recipe(family, tmp_path):
    hub = tmp_path / 'hub'
    processor = build_hub(family, hub, tmp_path)
    prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
    inputs = processor(images=image(80, 56), text=prompt, return_tensors='pt')
    logits = their_logits(hub, inputs, tmp_path, family)

    model, _ = load(hub)
    assert layout_of(hub) == 'llava_hf' and model.spec.family == family
    with torch.no_grad():
        ours = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                     attention_mask=inputs['attention_mask']).logits
    assert (ours - logits).abs().max() <= 1e-4

    resaved = tmp_path / 'resaved'
    said = vlmtune('resave', hub, resaved, cwd=tmp_path).stdout
    caveat = owner_caveat('llava_hf', model.spec)
    assert (f'note: {caveat}' in said) if caveat else ('note:' not in said), said
    assert stored_dtype(resaved) == 'fp32' == stored_dtype(hub)
    assert (their_logits(resaved, inputs, tmp_path, family) - logits).abs().max() <= 1e-5

    data, images = make_colour_dataset(tmp_path / 'data', n=8)
    work = tmp_path / 'work'
    vlmtune('train', 'llava15_7b_lora', '--checkpoint', resaved, '--data', data, '--images', images, '--iters', 2,
            '--work-dir', work, *FAST, cwd=tmp_path)
    tuned = tmp_path / 'tuned'
    converted = vlmtune('convert', 'llava15_7b_lora', work / 'iter_2.pth', tuned, '--base', resaved, '--dtype', 'fp32',
                        cwd=tmp_path)
    assert 'self-check PASS' in converted.stdout and '(llava_hf layout)' in converted.stdout
    again, _ = load(tuned)
    with torch.no_grad():
        ours = again(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                     attention_mask=inputs['attention_mask']).logits
    assert (their_logits(tuned, inputs, tmp_path, family) - ours).abs().max() <= 1e-4
    assert (ours - logits).abs().max() > 1e-6  # the two LoRA steps (lr 2e-4, merged) moved the LLM
