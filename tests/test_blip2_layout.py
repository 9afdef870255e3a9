"""The blip2_hf layout against transformers' own Blip2ForConditionalGeneration: a tiny BLIP-2 (Llama
text model) built and saved by transformers loads into the package with equal logits, and what the
package writes back loads in transformers with no missing keys and equal logits; BlipImageProcessor's
pixels equal the package's `square` (crop off) processor."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

from helpers.llava_tiny import llama_tokenizer
from vlmtune.formats import layout_of, load, save

Q = 6


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp('blip2')
    (root / 'tok').mkdir()
    tokenizer = llama_tokenizer(root / 'tok')
    processor = Blip2Processor(BlipImageProcessor(size={'height': 28, 'width': 28}), tokenizer, num_query_tokens=Q)
    config = Blip2Config(vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                            num_attention_heads=4, image_size=28, patch_size=14),
                         qformer_config=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                             intermediate_size=128),
                         text_config=dict(model_type='llama', hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=2, num_attention_heads=4, vocab_size=len(processor.tokenizer),
                                          pad_token_id=processor.tokenizer.pad_token_id),
                         num_query_tokens=Q, image_token_index=processor.tokenizer.convert_tokens_to_ids('<image>'))
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():  # queries and projections away from their init, so they show in the logits
        model.query_tokens.normal_(0, 1.0)
    folder = root / 'hub'
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    inputs = processor(images=picture, text='a photo of', return_tensors='pt')
    with torch.no_grad():
        logits = model(**inputs).logits
    return folder, inputs, logits, picture


def test_transformers_folder_loads_into_the_package(hub):
    folder, inputs, logits, picture = hub
    assert layout_of(folder) == 'blip2_hf'
    model, tokenizer = load(folder)
    assert model.num_image_token == Q and model.spec.connector['num_query_tokens'] == Q
    with torch.no_grad():
        ours = model(pixel_values=inputs['pixel_values'], input_ids=inputs['input_ids'],
                     attention_mask=inputs['attention_mask']).logits
    torch.testing.assert_close(ours, logits, atol=1e-4, rtol=0)
    pixels = model.image_processor.process(picture)
    torch.testing.assert_close(pixels, inputs['pixel_values'], atol=1e-6, rtol=0)  # BlipImageProcessor's


def test_package_writes_a_folder_transformers_loads(hub, tmp_path):
    folder, inputs, logits, _ = hub
    model, tokenizer = load(folder)
    out = save(model, tokenizer, tmp_path / 'ours', dtype='fp32')
    assert layout_of(out) == 'blip2_hf'
    theirs, info = Blip2ForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    processor = Blip2Processor.from_pretrained(str(out))
    assert processor.num_query_tokens == Q
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(**inputs).logits, logits, atol=1e-4, rtol=0)
    again, _ = load(out)
    assert again.spec.to_dict() == model.spec.to_dict()
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['qformer_config']['encoder_hidden_size'] == 48 and cfg['num_query_tokens'] == Q
