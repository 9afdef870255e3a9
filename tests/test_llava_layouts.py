"""llava_hf / llava_next_hf layout adapters, at the state-dict and config level: tiny hub-style folders
built by transformers 4.48's own classes (`llava_tiny`) are read into our names, written back (with the
hub's template, and with our own templates and processors), and the written folders are checked by
transformers' classes and processors and by LMDeploy 0.12.1's CPU front half.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModel, AutoProcessor, LlamaConfig, LlamaForCausalLM, Qwen2Config

from helpers.llava_tiny import (HUB_TEMPLATE, NAMES, PER_TILE, PINPOINTS_HW, QUESTION, SIZE, clip_processor,
                        expand2square, hubs_image_id, image, messages, write)
from vlmtune.data.templates import get_template
from vlmtune.formats import CheckpointError, holds, layout_of, llava_hf, llava_next_hf, natural_layout
from vlmtune.formats.common import read_state_dict
from vlmtune.formats.llava_common import OWN_KEY
from vlmtune.data.normalisation import CLIP_MEAN


def expected_keys(hub):
    """Package names and shapes, from the parts transformers builds for these configs."""
    adapter, folder, _, lm_class = hub
    cfg = json.loads((folder / 'config.json').read_text())
    vision = AutoModel.from_config(CONFIG_MAPPING[cfg['vision_config']['model_type']](**cfg['vision_config']))
    text_cls = LlamaConfig if lm_class is LlamaForCausalLM else Qwen2Config
    lm = lm_class(text_cls(**cfg['text_config']))
    dv, h = cfg['vision_config']['hidden_size'], cfg['text_config']['hidden_size']
    keys = {f'vision_tower.{k}': tuple(v.shape) for k, v in vision.state_dict().items()}
    keys.update({f'llm.{k}': tuple(v.shape) for k, v in lm.state_dict().items()})
    keys.update({'connector.0.weight': (h, dv), 'connector.0.bias': (h,), 'connector.2.weight': (h, h),
                 'connector.2.bias': (h,)})
    if adapter is llava_next_hf:
        keys['image_newline'] = (h,)
    return keys


@pytest.mark.parametrize('name', NAMES)
def test_read_spec_and_state_in_our_names(llava_hubs, llava_written, name):
    adapter, folder = llava_hubs[name][:2]
    spec, state = llava_written[name]['spec'], llava_written[name]['state']
    assert layout_of(folder) == adapter.NAME
    assert spec.vision_tower['type'] == ('siglip' if name == 'siglip' else 'clip')
    assert spec.vision_tower['select_layer'] == (-1 if name == 'siglip' else -2)
    assert spec.vision_tower['select_feature'] == 'patch' and spec.connector == {'type': 'mlp2x_gelu'}
    assert spec.llm['type'] == ('qwen2' if name == 'tiled' else 'llama')
    assert spec.template == {'type': 'hf_chat_template', 'chat_template': HUB_TEMPLATE}
    if name == 'flat':
        assert spec.image_processor == {'type': 'square', 'image_size': SIZE}
    elif name == 'siglip':
        assert spec.image_processor == {'type': 'square', 'image_size': SIZE, 'crop': False,
                                        'mean': [0.5] * 3, 'std': [0.5] * 3}
    else:  # (height, width), as transformers and our anyres read them
        assert spec.image_processor == {'type': 'anyres', 'image_size': SIZE, 'merge': 'spatial_unpad',
                                        'grid_pinpoints': PINPOINTS_HW}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_keys(llava_hubs[name])
    if name == 'tiled':  # tied: saved once by transformers, both names for our model
        assert state['llm.lm_head.weight'] is state['llm.model.embed_tokens.weight']
    layout_state = adapter.read_state(folder)
    back = adapter.to_layout(state, spec)
    assert back.keys() == layout_state.keys() and all(torch.equal(back[k], layout_state[k]) for k in back)


# transformers 5.x's in-memory names (5.24: model.* + lm_head, CLIP without its vision_model level)
NEWER = [('vision_tower.vision_model.', 'model.vision_tower.'),
         ('multi_modal_projector.', 'model.multi_modal_projector.'), ('language_model.model.', 'model.language_model.'),
         ('language_model.lm_head.', 'lm_head.'), ('image_newline', 'model.image_newline')]


@pytest.mark.parametrize('name', NAMES)
def test_newer_transformers_key_names_read(llava_hubs, llava_written, name):
    adapter, folder = llava_hubs[name][:2]
    newer = {}
    for key, value in read_state_dict(folder).items():
        old, new = next((o, n) for o, n in NEWER if key.startswith(o))
        newer[new + key[len(old):]] = value
    got = adapter.from_layout(newer, llava_written[name]['spec'])
    assert got.keys() == llava_written[name]['state'].keys()
    assert all(torch.equal(got[k], llava_written[name]['state'][k]) for k in got)
    assert adapter.part_of('model.language_model.norm.weight') == 'llm'


@pytest.mark.parametrize('name', NAMES)
def test_written_folder_loads_in_transformers_with_equal_logits(llava_hubs, llava_written, name):
    model_class = llava_hubs[name][2]
    hub, out = llava_hubs[name][1], llava_written[name]['hub_tpl']
    picture = image(100, 50)
    inputs = {}
    for folder in (hub, out):
        processor = AutoProcessor.from_pretrained(str(folder))
        prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
        inputs[folder] = processor(images=picture, text=prompt, return_tensors='pt')
    assert inputs[hub]['input_ids'].tolist() == inputs[out]['input_ids'].tolist()
    model, info = model_class.from_pretrained(str(out), output_loading_info=True)
    with torch.no_grad():
        reference = model_class.from_pretrained(str(hub)).eval()(**inputs[hub]).logits
        logits = model.eval()(**inputs[out]).logits
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    assert torch.allclose(logits, reference, atol=1e-4, rtol=0), (logits - reference).abs().max()
    other = dict(inputs[out], pixel_values=AutoProcessor.from_pretrained(str(out))(
        images=image(100, 50, seed=1), text='<image>', return_tensors='pt')['pixel_values'])
    with torch.no_grad():  # the image reaches the logits, so the comparison above can fail
        assert (model(**other).logits - logits).abs().max() > 1e-3
    generated = model.generate(**inputs[out], max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs[out]['input_ids'].shape[1] + 3


@pytest.mark.parametrize('name', NAMES)
def test_our_record_round_trips_exactly(llava_hubs, llava_written, name):
    adapter = llava_hubs[name][0]
    for spec, folder in ((llava_written[name]['spec'], llava_written[name]['hub_tpl']),
                         (llava_written[name]['own_spec'], llava_written[name]['ours'])):
        assert adapter.read_spec(folder).to_dict() == spec.to_dict()
        again = adapter.from_layout(adapter.read_state(folder), spec)
        assert all(torch.equal(again[k], llava_written[name]['state'][k]) for k in llava_written[name]['state'])
    cfg = json.loads((llava_written[name]['ours'] / 'config.json').read_text())
    assert cfg[OWN_KEY]['template'] == llava_written[name]['own_spec'].template
    assert cfg['text_config']['architectures']
    assert cfg['vision_feature_select_strategy'] == ('full' if name == 'siglip' else 'default')
    assert cfg['image_seq_length'] == PER_TILE and cfg['image_token_index'] == hubs_image_id(llava_hubs[name][1])
    if name == 'tiled':
        assert cfg['image_grid_pinpoints'] == PINPOINTS_HW and cfg['tie_word_embeddings'] is True


@pytest.mark.parametrize('name', NAMES)
def test_our_template_renders_and_the_processor_expands_images(llava_hubs, llava_written, name):
    spec, folder = llava_written[name]['own_spec'], llava_written[name]['ours']
    template = get_template(spec.template['type'])
    processor = AutoProcessor.from_pretrained(str(folder))
    prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
    ours = template.render([{'from': 'human', 'value': '<image>\n' + QUESTION}], spec.system_message,
                           add_generation_prompt=True)
    assert prompt == ours
    assert processor.tokenizer.apply_chat_template([{'role': 'user', 'content': '<image>\n' + QUESTION}],
                                                   tokenize=False, add_generation_prompt=True) == ours
    size = (100, 50)  # NeXT: 112 x 56 canvas (w x h) -> 2 tiles side by side; unpad keeps 4 of 4 rows
    ids = processor(images=image(*size), text=prompt, return_tensors='pt')['input_ids'][0]
    image_id = hubs_image_id(llava_hubs[name][1])
    expected = PER_TILE + 4 * (8 + 1) if name == 'tiled' else PER_TILE  # SigLIP: 16 patches, no CLS
    assert int((ids == image_id).sum()) == expected
    eos = json.loads((folder / 'generation_config.json').read_text())['eos_token_id']
    assert processor.tokenizer.convert_tokens_to_ids(template.end_token) in eos
    model = llava_hubs[name][2].from_pretrained(str(folder)).eval()
    inputs = processor(images=image(*size), text=prompt, return_tensors='pt')
    assert model.generate(**inputs, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[0] + 2


def test_pad_is_not_reproduced_by_the_4_48_processor(llava_written):
    """4.48 has no padding processor: the written CLIPImageProcessor crops non-square images."""
    folder = llava_written['flat']['ours']
    pre = json.loads((folder / 'preprocessor_config.json').read_text())
    assert pre['image_processor_type'] == 'CLIPImageProcessor' and pre['do_pad'] is True
    processor = AutoProcessor.from_pretrained(str(folder)).image_processor
    reference = clip_processor()
    square, wide = image(80, 80), image(112, 56)
    pixels = lambda proc, pic: proc(pic, return_tensors='pt')['pixel_values']  # noqa: E731
    assert torch.equal(pixels(processor, square), pixels(reference, expand2square(square, CLIP_MEAN)))
    gap = (pixels(processor, wide) - pixels(reference, expand2square(wide, CLIP_MEAN))).abs()
    assert gap.max() > 1.0 and gap.mean() > 0.3  # measured: max 3.23, mean 0.97 (normalised units)
    assert any('pad-to-square' in m for m in llava_hf.describe(folder, llava_written['flat']['own_spec'])['missing'])
    assert 'do_pad' in (folder / 'README.md').read_text()


def test_natural_layouts_and_refusals(llava_written, tmp_path):
    flat, tiled = llava_written['flat']['spec'], llava_written['tiled']['spec']
    assert natural_layout(flat) == 'llava_hf' and natural_layout(tiled) == 'llava_next_hf'
    assert not holds('llava_next_hf', flat) and not holds('llava_hf', tiled)
    cases = [
        (llava_hf, flat.override({'connector': {'type': 'linear'}}), "connector 'linear'"),
        (llava_hf, flat.override({'vision_tower': {'type': 'intern_vit'}}), "vision_tower 'intern_vit'"),
        (llava_hf, flat.override({'llm': {'type': 'internlm2'}}), "LLM 'internlm2'"),
        (llava_hf, flat.override({'image_processor': {'type': 'square', 'image_size': 112}}), 'image_size 112'),
        (llava_hf, flat.override({'template': {'type': 'internvl2_5'}}), 'repeats one image token'),
        (llava_hf, flat.override({'image_processor': {'type': 'anyres', 'image_size': SIZE}}), 'llava_next_hf'),
        (llava_next_hf, tiled.override({'vision_tower': {'select_feature': 'cls_patch'}}), 'square patch grid'),
        (llava_next_hf, tiled.override({'image_processor': {'merge': 'flat'}}), "merge 'flat'"),
        (llava_next_hf, tiled.override({'image_processor': {'type': 'square', 'image_size': SIZE}}), 'always tiles'),
    ]
    for adapter, spec, reason in cases:
        got = adapter.unsupported(spec)
        assert got and reason in got, (reason, got)
    with pytest.raises(CheckpointError, match='cannot hold connector'):
        write(llava_hf, cases[0][1], llava_written['flat']['state'], None, tmp_path / 'refused')
    assert llava_hf.unsupported(flat.override({'vision_tower': {'select_feature': 'cls_patch'}})) is None


def test_an_llm_the_owners_class_runs_only_in_some_transformers_is_held_with_a_caveat(llava_written, monkeypatch):
    """From the LLM entry's facts: a forward without cache_position (transformers' Llava passes it; 4.48's OPT
    has none: 4.57 runs it) and a head bias (Llava's own lm_head has none from 4.52 on; Phi-2's has one: 4.51
    runs it). Either is held, said at save, and is not the natural layout."""
    import dataclasses
    from vlmtune.model.llm import REGISTRY
    flat = llava_written['flat']['spec']
    family = flat.llm['type']
    entry = REGISTRY.get(family)

    class NoCachePosition(LlamaForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None):
            raise AssertionError('never called: the signature is the fact')
    from vlmtune.formats import owner_caveat, owner_env
    assert llava_hf.unsupported(flat) is None and owner_caveat('llava_hf', flat) is None
    assert natural_layout(flat) == 'llava_hf'
    for changed, reason, env in ((dict(model_class=NoCachePosition), 'cache_position', 'tf-4.57'),
                                 (dict(head_bias=True), 'head bias', 'tf-4.51')):
        monkeypatch.setitem(REGISTRY._entries, family, dataclasses.replace(entry, **changed))
        assert llava_hf.unsupported(flat) is None
        got = owner_caveat('llava_hf', flat)
        assert got and reason in got and owner_env('llava_hf', flat) == env, (reason, got)
        assert natural_layout(flat) != 'llava_hf'  # a layout whose owner runs it comes first


def test_what_llava_hf_says_that_we_cannot_hold_is_refused_on_read(llava_written, tmp_path):
    source = llava_written['flat']['hub_tpl']
    for field, value, message in (('projector_hidden_act', 'gelu_pytorch_tanh', 'exact GELU'),
                                  ('vision_feature_layer', [-2, -5], 'list of layers')):
        folder = tmp_path / field
        folder.mkdir()
        cfg = json.loads((source / 'config.json').read_text())
        cfg[field] = value
        (folder / 'config.json').write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match=message):
            llava_hf.read_spec(folder)


def test_token_counts_agree_with_the_spec(llava_written):
    """One source for image tokens: llava-hf's count = the spec's (once the towers and connector land)."""
    for name in ('flat', 'tiled'):
        cfg = json.loads((llava_written[name]['ours'] / 'config.json').read_text())
        assert llava_written[name]['own_spec'].image_tokens().per_tile == cfg['image_seq_length']


# --- LMDeploy 0.12.1's CPU front half -------------------------------------------------------------
def turbomind_is_supported(lmdeploy):
    """`lmdeploy.turbomind.supported_models.is_supported` without the package __init__ (it loads CUDA)."""
    path = Path(lmdeploy.__file__).parent / 'turbomind' / 'supported_models.py'
    spec = importlib.util.spec_from_file_location('_lmd_tm_supported_models', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.is_supported


@pytest.mark.engines
@pytest.mark.parametrize('name', NAMES)
def test_lmdeploy_front_half(llava_hubs, llava_written, name):
    import lmdeploy
    from lmdeploy.archs import check_vl_llm, get_model_arch
    from lmdeploy.model import get_chat_template
    from lmdeploy.tokenizer import Tokenizer
    from lmdeploy.vl.model.llava_hf import LlavaHfVisionModel
    from lmdeploy.vl.model.llava_next import LlavaNextVisionModel
    spec, folder = llava_written[name]['own_spec'], str(llava_written[name]['ours'])
    arch, hf_config = get_model_arch(folder)
    assert arch == llava_hubs[name][2].__name__ and check_vl_llm(hf_config.to_dict())
    assert turbomind_is_supported(lmdeploy)(folder) == (name != 'tiled')  # Llava (head_dim 64), not LlavaNext

    chat_template = get_chat_template(folder)
    assert type(chat_template).__name__ == 'HFChatTemplate'
    vision = (LlavaNextVisionModel if name == 'tiled' else LlavaHfVisionModel)(folder, hf_config=hf_config,
                                                                              backend='pytorch')
    vision.build_preprocessor()
    picture = image(100, 50)
    request = [{'role': 'user', 'content': [{'type': 'text', 'text': QUESTION}, {'type': 'image', 'image': picture}]}]
    prepared = vision.preprocess(request)
    prompt, placeholder = vision.proc_messages(prepared, chat_template, sequence_start=True)
    ours = get_template(spec.template['type']).render([{'from': 'human', 'value': '<image>\n' + QUESTION}],
                                                      spec.system_message, add_generation_prompt=True)
    assert prompt.replace(placeholder, '<image>') == ours

    # LMDeploy's ids (image placeholders = its pad id) against transformers' processor on the same prompt
    lmd = vision.to_pytorch_aux(prepared, prompt, placeholder, Tokenizer(folder), sequence_start=True)
    image_id = hubs_image_id(llava_hubs[name][1])
    hf_ids = AutoProcessor.from_pretrained(folder)(images=picture, text=ours)['input_ids'][0]
    start, count = lmd['multimodal'][0]['offset'], int(lmd['multimodal'][0]['image_tokens'])
    model_count = hf_ids.count(image_id)
    assert count == model_count + (name == 'siglip')  # LMDeploy 0.12.1 counts a CLS for 'full'; SigLIP has none
    assert any('SigLIP' in m for m in llava_hubs[name][0].describe(folder, spec)['missing']) == (name == 'siglip')
    lmd_ids = lmd['input_ids']
    assert lmd_ids[:start] + [image_id] * model_count + lmd_ids[start + count:] == hf_ids
