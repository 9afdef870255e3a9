"""Released BLIP-2 checkpoints, for every LLM family the blip2_hf layout holds (generated from the registry:
a family registered tomorrow is covered with no test edit (where the pinned transformers computes it right:
else the owner checks of test_contracts.py run it in its oracle_env); released BLIP-2 uses OPT): a tiny
Blip2ForConditionalGeneration built and saved by transformers with its Blip2Processor loads into the package
with equal logits and the processor's own pixels; the chat prompt's ids equal Blip2Processor's (the query
tokens before the tokenizer's BOS, then "Question: ... Answer:"); one LoRA step, merged, saved back, and
transformers reloads it with no missing keys and the package's logits."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

from helpers.owners import pinned_transformers_computes

from vlmtune.engine.convert import merge_lora
from vlmtune.engine.trainability import LoraSettings, apply_trainability
from vlmtune.formats import blip2_hf, layout_of, load, save
from vlmtune.model.llm import REGISTRY as LLMS
from vlmtune.tiny import TinySpec, llm_config_dict
from vlmtune.tiny.compose import tiny_tokenizer

pytestmark = pytest.mark.side_envs

Q = 6
QUESTION = 'What colour is it?'
PROMPT = f'Question: {QUESTION} Answer:'   # the model card's prompt form
FAMILIES = [f for f in LLMS.names() if pinned_transformers_computes(f)]


def blip2_holds(family) -> bool:
    from vlmtune.tiny import compose_tiny
    model, _ = compose_tiny('blip2_vision', ('qformer', {'num_query_tokens': Q}), family, ('square', {'crop': False}),
                            'blip2')
    return blip2_hf.unsupported(model.spec) is None


HELD = [f for f in FAMILIES if blip2_holds(f)]


@pytest.fixture(scope='module', params=HELD)
def hub(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(f'blip2-{family}')
    tokenizer = tiny_tokenizer(family, 'blip2')
    processor = Blip2Processor(BlipImageProcessor(size={'height': 28, 'width': 28}), tokenizer, num_query_tokens=Q)
    text = llm_config_dict(TinySpec(llm=family), tokenizer)
    config = Blip2Config(vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                            num_attention_heads=4, image_size=28, patch_size=14),
                         qformer_config=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                             intermediate_size=128),
                         text_config=text, num_query_tokens=Q,
                         image_token_index=tokenizer.convert_tokens_to_ids('<image>'))
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():  # queries away from their init, so they show in the logits
        model.query_tokens.normal_(0, 1.0)
    folder = root / 'hub'
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    inputs = processor(images=picture, text=PROMPT, return_tensors='pt')
    with torch.no_grad():
        logits = model(**inputs).logits
    return dict(family=family, folder=folder, inputs=inputs, logits=logits, picture=picture)


def test_released_folder_loads_into_the_package(hub):
    assert layout_of(hub['folder']) == 'blip2_hf'
    model, tokenizer = load(hub['folder'])
    assert model.spec.family == hub['family'] and model.spec.template['type'] == 'blip2'
    assert model.num_image_token == Q and model.spec.connector['num_query_tokens'] == Q
    inputs = hub['inputs']
    with torch.no_grad():
        ours = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                     attention_mask=inputs['attention_mask']).logits
    torch.testing.assert_close(ours, hub['logits'], atol=1e-4, rtol=0)
    torch.testing.assert_close(model.image_processor.process(hub['picture']), inputs['pixel_values'], atol=1e-6, rtol=0)


def test_chat_prompt_ids_equal_blip2_processors(hub):
    model, tokenizer = load(hub['folder'])
    prompt = model.image_tokens.expand(model.prompt('<image>\n' + QUESTION), [1])
    ids = model.template.chat_inputs(tokenizer, prompt)['input_ids']
    assert ids.tolist() == hub['inputs']['input_ids'].tolist()
    if tokenizer.bos_token_id is not None and tokenizer('a').input_ids[0] == tokenizer.bos_token_id:
        assert ids[0, Q].item() == tokenizer.bos_token_id  # the query tokens before the BOS, as the processor


def test_one_lora_step_saves_back_and_transformers_reloads(hub, tmp_path):
    model, tokenizer = load(hub['folder'])
    apply_trainability(model, vision_tower='frozen', connector='frozen', llm='lora',
                       lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    inputs = hub['inputs']
    labels = inputs['input_ids'].clone()
    labels[:, :Q + 1] = -100
    model.train()
    loss = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'], labels=labels,
                 return_logits=False).loss
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    model.eval()
    merge_lora(model)
    with torch.no_grad():
        ours = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                     attention_mask=inputs['attention_mask']).logits
    assert (ours - hub['logits']).abs().max() > 1e-6  # the step moved the LLM
    out = save(model, tokenizer, tmp_path / 'tuned', dtype='fp32')
    assert layout_of(out) == 'blip2_hf'
    theirs, info = Blip2ForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    assert Blip2Processor.from_pretrained(str(out)).num_query_tokens == Q
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(**inputs).logits, ours, atol=1e-4, rtol=0)
    again, _ = load(out)
    assert again.spec.to_dict() == model.spec.to_dict()
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['qformer_config']['encoder_hidden_size'] == 48 and cfg['num_query_tokens'] == Q

