"""LMDeploy 0.12.1's CPU-side front half against vlmtune's official-format folders.

LMDeploy has no CPU engine, but everything before the engine runs here: architecture detection,
the InternVL vision preprocessor (tiling), the chat template (the tokenizer's Jinja
`chat_template` via `HFChatTemplate`), placement and expansion of the image tokens, tokenisation,
the stop-token set, and even the TurboMind path's vision encoder (LMDeploy runs the *folder's own*
remote code for it, in fp16, with `accelerate`). Each test feeds a tiny folder written by
`make_tiny_folder` to that code and compares with vlmtune's own preprocessing / templates / chat().

Folder names are neutral on purpose: `lmdeploy.model.get_chat_template` matches some built-in
templates on the *path* (e.g. 'vicuna', 'llava'+'v1', 'internlm'+'chat' without 'internlm2') before
trying the tokenizer's chat_template.
"""
import asyncio
import importlib.util
import json
from pathlib import Path

import lmdeploy  # noqa: F401  (installed with the project's serve extra)
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig

from vlmtune.data.templates import render_prompt
from vlmtune.data.tiling import TilingConfig, count_tiles, tile_image
from vlmtune.formats import load
from vlmtune.formats.internvl import held_llms
from vlmtune.formats.internvl_remote.conversation import get_conv_template
from vlmtune.data.image import ImageTokens
from vlmtune.tiny import TinySpec, make_tiny_folder
from vlmtune.formats.tokenizers import load_tokenizer

pytestmark = pytest.mark.engines

IMAGE_SIZE = 56
NUM_IMAGE_TOKEN = (IMAGE_SIZE // 14) ** 2 // 4  # 4 for these tiny models
# family -> (LLM architecture, template, max_dynamic_patch written into the folder), for every family the
# internvl layout holds and an LMDeploy engine serves (the entries say). Families alternate max_dynamic_patch
# so the tests show LMDeploy reads the folder's value. Under 4.48 LMDeploy reads Qwen3 / Qwen3-MoE through
# the folder's shipped code.
FAMILIES = {entry.family: (entry.architecture, entry.default_template, (12, 6)[i % 2])
            for i, entry in enumerate(e for e in held_llms() if {'turbomind', 'lmdeploy-pytorch'} & set(e.engines))}
# (width, height, PIL mode)
IMAGES = [(800, 600, 'RGB'), (300, 1000, 'RGB'), (56, 56, 'RGB'), (2000, 200, 'RGB'), (120, 56, 'RGB'),
          (448, 448, 'RGB'), (57, 300, 'L'), (640, 480, 'RGBA')]
Q1, A1, Q2 = 'What is in the image?', 'A cat.', 'What color is it?'


def make_image(width, height, mode='RGB', seed=0):
    """Noise + gradient, so resampling differences would show."""
    rng = np.random.default_rng(seed + width * 7 + height)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                     (xx + yy) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(-40, 41, size=(height, width, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), 'RGB')
    if mode == 'L':
        return img.convert('L')
    if mode == 'RGBA':
        img = img.convert('RGBA')
        img.putalpha(Image.fromarray(rng.integers(0, 256, size=(height, width)).astype(np.uint8), 'L'))
    return img


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    llm = request.param
    _, template, max_patch = FAMILIES[llm]
    folder = make_tiny_folder(tmp_path_factory.mktemp(f'lmd-{llm}') / f'tiny_{llm}',
                              TinySpec(llm=llm, vit='300m', image_size=IMAGE_SIZE, max_dynamic_patch=max_patch))
    return dict(llm=llm, folder=str(folder), template=template, max_patch=max_patch,
                config=json.loads((Path(folder) / 'config.json').read_text(encoding='utf-8')))


@pytest.fixture(scope='module')
def vision(family):
    """LMDeploy's InternVL vision wrapper as the TurboMind backend builds it (preprocessor only)."""
    from lmdeploy.vl.model.internvl import InternVLVisionModel
    folder = family['folder']
    model = InternVLVisionModel(folder, hf_config=AutoConfig.from_pretrained(folder, trust_remote_code=True),
                                backend='turbomind')
    model.build_preprocessor()
    return model


@pytest.fixture(scope='module')
def chat_template(family):
    from lmdeploy.model import get_chat_template
    return get_chat_template(family['folder'])


@pytest.fixture(scope='module')
def lmd_tokenizer(family):
    from lmdeploy.tokenizer import Tokenizer
    return Tokenizer(family['folder'])


@pytest.fixture(scope='module')
def ours(family):
    model, tok = load(family['folder'])
    return model, tok


def lmd_messages(image, first_question=Q1, history=True):
    """OpenAI-style messages as LMDeploy's MultimodalProcessor hands them to the vision model
    (image item already converted to {'type': 'image', 'image': PIL})."""
    msgs = [{'role': 'user', 'content': [{'type': 'image', 'image': image},
                                         {'type': 'text', 'text': first_question}]}]
    if history:
        msgs += [{'role': 'assistant', 'content': A1}, {'role': 'user', 'content': Q2}]
    return msgs


def our_conversation(history=True):
    conv = [{'from': 'human', 'value': '<image>\n' + Q1}]
    if history:
        conv += [{'from': 'gpt', 'value': A1}, {'from': 'human', 'value': Q2}]
    return conv


# ---------------------------------------------------------------------------------------------
# a. architecture / task detection

def test_arch_is_internvl_vl_model(family):
    from lmdeploy.archs import check_vl_llm, get_model_arch, get_task
    from lmdeploy.vl.model.builder import load_vl_model
    from lmdeploy.vl.model.internvl import InternVLVisionModel

    arch, cfg = get_model_arch(family['folder'])
    assert arch == 'InternVLChatModel'
    assert cfg.llm_config.architectures[0] == FAMILIES[family['llm']][0]
    assert check_vl_llm(cfg.to_dict()) is True
    task, engine_cls = get_task(family['folder'])
    assert (task, engine_cls.__name__) == ('vlm', 'VLAsyncEngine')
    # The vision-model registry picks InternVL's wrapper (backend='pytorch' builds only the
    # preprocessor, which is what runs on CPU; 'turbomind' would also build the ViT on CUDA).
    vl_model = load_vl_model(family['folder'], backend='pytorch')
    assert type(vl_model) is InternVLVisionModel


def _load_turbomind_supported_models():
    """`lmdeploy.turbomind.supported_models` without the package __init__ (which loads the CUDA
    extension): the module itself only needs lmdeploy.archs/utils."""
    path = Path(lmdeploy.__file__).parent / 'turbomind' / 'supported_models.py'
    spec = importlib.util.spec_from_file_location('_lmd_tm_supported_models', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_turbomind_support_depends_on_head_dim(family, tmp_path):
    """TurboMind takes InternVL with an LLM its entry says it serves (LMDeploy's own list is the oracle of
    the entry's `engines`), and only for head_dim 64 or 128; otherwise `pipeline(..., TurbomindEngineConfig())`
    silently falls back to the PyTorch engine. The default tiny folders (head_dim 16; Qwen3's explicit 32)
    are therefore PyTorch-engine-only; tools/gpu_smoke.sh builds a head_dim-128 one."""
    from vlmtune.model.llm import REGISTRY
    is_supported = _load_turbomind_supported_models().is_supported
    assert is_supported(family['folder']) is False
    shaped = make_tiny_folder(tmp_path / f'tm_{family["llm"]}',
                              TinySpec(llm=family['llm'], image_size=IMAGE_SIZE, llm_width=256, llm_heads=2,
                                       llm_head_dim=128,
                                       llm_kv_heads=2, llm_intermediate=512))
    assert is_supported(str(shaped)) is ('turbomind' in REGISTRY.get(family['llm']).engines), family['llm']


# ---------------------------------------------------------------------------------------------
# b. image preprocessing

def test_preprocessor_reads_folder_config(family, vision):
    cfg = family['config']
    assert vision.image_token == '<IMG_CONTEXT>'
    assert vision.image_token_id == load_tokenizer(family['folder']).convert_tokens_to_ids('<IMG_CONTEXT>')
    assert vision.image_tokens_per_patch == NUM_IMAGE_TOKEN
    # dynamic_image_size=True -> the InternVL-Chat-V1-5 dynamic tiling path
    assert vision.processor.__name__ == '_preprocess_v1_5'
    assert vision.config.max_dynamic_patch == cfg['max_dynamic_patch'] == family['max_patch']
    assert vision.config.min_dynamic_patch == cfg['min_dynamic_patch'] == 1
    assert vision.config.use_thumbnail is True and cfg['use_thumbnail'] is True
    # LMDeploy tiles at vision_config.image_size but counts tokens with force_image_size: they must agree.
    assert cfg['vision_config']['image_size'] == cfg['force_image_size'] == IMAGE_SIZE


@pytest.mark.parametrize('width,height,mode', IMAGES, ids=[f'{w}x{h}{m}' for w, h, m in IMAGES])
def test_preprocess_matches_tile_image(family, vision, width, height, mode):
    cfg = family['config']
    image = make_image(width, height, mode)
    out = vision.preprocess(lmd_messages(image, history=False))
    assert out[-1]['role'] == 'preprocess'
    (prep,) = out[-1]['content']
    pixel_values = prep['pixel_values']

    tiling = TilingConfig(image_size=IMAGE_SIZE, min_num=cfg['min_dynamic_patch'], max_num=cfg['max_dynamic_patch'],
                          use_thumbnail=cfg['use_thumbnail'])
    expected = tile_image(image, tiling)
    n_tiles = count_tiles(width, height, tiling.min_num, tiling.max_num, IMAGE_SIZE, tiling.use_thumbnail)
    assert expected.shape == (n_tiles, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert pixel_values.dtype == torch.float32
    assert pixel_values.shape == expected.shape
    assert prep['image_tokens'] == n_tiles * NUM_IMAGE_TOKEN
    assert prep['image_token_id'] == vision.image_token_id
    assert prep['image_size'] == (width, height)
    # Same PIL bicubic resize on both sides; only ToTensor+Normalize vs our fused scale/shift
    # differ in float rounding (measured max ~5e-7).
    torch.testing.assert_close(pixel_values, expected, rtol=0, atol=1e-5)


def test_preprocess_known_tile_counts(family, vision):
    k = family['max_patch']
    counts = {}
    for w, h in [(800, 600), (56, 56), (2000, 200)]:
        out = vision.preprocess(lmd_messages(make_image(w, h), history=False))
        counts[(w, h)] = out[-1]['content'][0]['pixel_values'].shape[0]
    # 56x56 is one tile, no thumbnail; 800x600 -> 4x3(+1) with max 12, 3x2(+1) with max 6;
    # 2000x200 -> 10x1(+1) / 6x1(+1).
    assert counts == {(800, 600): 13 if k == 12 else 7, (56, 56): 1, (2000, 200): 11 if k == 12 else 7}


@pytest.mark.parametrize('max_num', [1, 2, 4])
def test_preprocess_per_image_max_dynamic_patch(family, vision, max_num):
    """An image item may carry `max_dynamic_patch`; LMDeploy then tiles with it, like our max_num."""
    image = make_image(800, 600)
    msgs = [{'role': 'user', 'content': [{'type': 'image', 'image': image, 'max_dynamic_patch': max_num},
                                         {'type': 'text', 'text': Q1}]}]
    pixel_values = vision.preprocess(msgs)[-1]['content'][0]['pixel_values']
    expected = tile_image(image, TilingConfig(image_size=IMAGE_SIZE, min_num=1, max_num=max_num, use_thumbnail=True))
    assert pixel_values.shape == expected.shape
    torch.testing.assert_close(pixel_values, expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# c. chat template, image placeholders, tokenisation

def test_chat_template_is_the_tokenizers(family, chat_template):
    from lmdeploy.model import HFChatTemplate
    assert type(chat_template) is HFChatTemplate  # not the role-less BaseChatTemplate
    hf_tok = chat_template.tokenizer
    assert hf_tok.chat_template, 'tokenizer_config.json has no chat_template'
    msgs = [{'role': 'user', 'content': Q1}, {'role': 'assistant', 'content': A1}, {'role': 'user', 'content': Q2}]
    assert chat_template.messages2prompt(msgs) == hf_tok.apply_chat_template(msgs, tokenize=False,
                                                                             add_generation_prompt=True)


def test_two_turn_prompt_matches_render_prompt(family, vision, chat_template):
    """LMDeploy puts `<img><IMG_CONTEXT></img>\\n` where the image item is, renders with the
    tokenizer's chat_template, and expands the single `<IMG_CONTEXT>` to image_tokens ids later
    (to_pytorch / to_turbomind). Ours: `<image>` in the text, expanded by ImageTokens.expand."""
    image = make_image(800, 600)
    msgs = vision.preprocess(lmd_messages(image))
    prompt, image_token = vision.proc_messages(msgs, chat_template, sequence_start=True)
    assert image_token == '<IMG_CONTEXT>'
    assert prompt.count('<IMG_CONTEXT>') == 1

    ours = render_prompt(family['template'], our_conversation(), add_generation_prompt=True)
    # level 1: before expansion, one placeholder each
    assert prompt == ours.replace('<image>', '<img><IMG_CONTEXT></img>')
    # level 2: after expansion with the same tile count
    n_tiles = msgs[-1]['content'][0]['pixel_values'].shape[0]
    expanded_lmd = prompt.replace('<IMG_CONTEXT>', '<IMG_CONTEXT>' * msgs[-1]['content'][0]['image_tokens'])
    assert expanded_lmd == ImageTokens(NUM_IMAGE_TOKEN).expand(ours, [n_tiles])


def test_input_ids_match_vlmtune_chat(family, vision, chat_template, lmd_tokenizer, ours):
    """Token level: LMDeploy's PyTorch-engine packing (`to_pytorch`) gives the same ids as the
    query vlmtune's `model.chat()` builds for turn 2 of a conversation (history re-sent)."""
    model, tok = ours
    image = make_image(800, 600)
    msgs = vision.preprocess(lmd_messages(image))
    packed = vision.to_pytorch(msgs, chat_template, lmd_tokenizer, sequence_start=True)
    (prep,) = packed['multimodal']
    n_tiles = prep['pixel_values'].shape[0]

    query = model.prompt(Q2, [('<image>\n' + Q1, A1)])  # what chat() builds for turn 2
    query = model.image_tokens.expand(query, [n_tiles])
    assert packed['prompt'].replace('<IMG_CONTEXT>', '<IMG_CONTEXT>' * prep['image_tokens']) == query
    expected_ids = tok(query)['input_ids']
    assert packed['input_ids'] == expected_ids
    # the image block starts right after `<img>`
    img_start = tok.convert_tokens_to_ids('<img>')
    assert expected_ids[prep['offset'] - 1] == img_start
    assert expected_ids[prep['offset']:prep['offset'] + prep['image_tokens']] == \
        [vision.image_token_id] * prep['image_tokens']
    # BOS: InternLM2's tokenizer adds <s> (chat() tokenises with it too); Qwen2's has none.
    if family['llm'] == 'internlm2':
        assert packed['input_ids'][0] == tok.bos_token_id == lmd_tokenizer.bos_token_id
    else:
        assert lmd_tokenizer.bos_token_id is None


def test_default_and_explicit_system_message(family, chat_template):
    conv = get_conv_template(family['template'])
    default_system = conv.system_template.format(system_message=conv.system_message) + conv.sep
    user_only = [{'role': 'user', 'content': Q1}]
    prompt = chat_template.messages2prompt(user_only)
    assert prompt.startswith(default_system)
    assert prompt == render_prompt(family['template'], [{'from': 'human', 'value': Q1}], add_generation_prompt=True)
    # get_prompt (plain string prompts, e.g. pipe('text')) goes through the same path
    assert chat_template.get_prompt(Q1) == prompt

    custom = [{'role': 'system', 'content': 'Be brief.'}] + user_only
    prompt = chat_template.messages2prompt(custom)
    assert conv.system_message not in prompt
    assert prompt == render_prompt(family['template'], [{'from': 'system', 'value': 'Be brief.'},
                                                        {'from': 'human', 'value': Q1}], add_generation_prompt=True)

    # Later turns of a stateful pipe.chat session (sequence_start=False): no system block at all.
    later = chat_template.messages2prompt([{'role': 'user', 'content': Q2}], sequence_start=False)
    assert later == conv.roles[0] + Q2 + conv.sep + conv.roles[1]


def test_pair_order_decides_image_placement(family, vision, chat_template):
    """`pipe.chat((text, image))` puts the image AFTER the text; `(image, text)` puts it before, which
    is what official/vlmtune `chat()` does (`<image>\\n` + question)."""
    from lmdeploy.serve.processors.multimodal import MultimodalProcessor
    from vlmtune.serve.pipeline import lmdeploy_query
    image = make_image(120, 56)

    def prompt_for(pair):
        (messages,) = MultimodalProcessor.format_prompts(pair)
        messages = asyncio.run(MultimodalProcessor.async_convert_multimodal_data(messages))
        messages = vision.preprocess(messages)
        return vision.proc_messages(messages, chat_template, sequence_start=True)[0]

    ours = render_prompt(family['template'], [{'from': 'human', 'value': '<image>\n' + Q1}],
                         add_generation_prompt=True).replace('<image>', '<img><IMG_CONTEXT></img>')
    assert prompt_for((image, Q1)) == ours
    assert prompt_for(lmdeploy_query(Q1, [image])) == ours  # what vlmtune's LMDeploy backend sends
    text_first = prompt_for((Q1, image))
    assert text_first != ours
    conv = get_conv_template(family['template'])
    assert conv.roles[0] + Q1 + '<img><IMG_CONTEXT></img>\n' + conv.sep in text_first


# ---------------------------------------------------------------------------------------------
# d. stop tokens

def test_stop_tokens_include_end_of_turn(family, chat_template, lmd_tokenizer, ours):
    """Reproduces AsyncEngine: chat_template.stop_words -> ids, then
    GenerationConfig.update_from_hf_gen_cfg(generation_config.json, tokenizer eos)."""
    from lmdeploy.messages import GenerationConfig
    from lmdeploy.utils import _stop_words, get_hf_gen_cfg

    model, tok = ours
    end_of_turn = get_conv_template(family['template']).sep.strip()
    assert end_of_turn == model.template.end_token  # the official template's separator = ours
    im_end = tok.convert_tokens_to_ids(end_of_turn)
    assert lmd_tokenizer.indexes_containing_token(end_of_turn) == [im_end]

    hf_gen_cfg = get_hf_gen_cfg(family['folder'])
    eos_list = hf_gen_cfg['eos_token_id']
    eos_list = [eos_list] if isinstance(eos_list, int) else eos_list
    assert im_end in eos_list

    stop_words = _stop_words(chat_template.stop_words, lmd_tokenizer)
    engine_stop_words = stop_words[0][0].tolist() if stop_words is not None else None
    gen = GenerationConfig(max_new_tokens=16, do_sample=False)
    gen.convert_stop_bad_words_to_ids(lmd_tokenizer)
    gen.stop_token_ids = gen.stop_token_ids or engine_stop_words
    gen.update_from_hf_gen_cfg(hf_gen_cfg, lmd_tokenizer.eos_token_id)
    assert im_end in gen.stop_token_ids
    assert lmd_tokenizer.eos_token_id in gen.stop_token_ids
    assert set(gen.stop_token_ids) == set(eos_list) | {lmd_tokenizer.eos_token_id} | set(engine_stop_words or [])
    from vlmtune.model.llm import REGISTRY
    if REGISTRY.get(family['llm']).tiny_tokenizer == 'bpe':
        # the tiny BPE tokenizers' eos_token is the end-of-turn token itself
        assert chat_template.stop_words == [end_of_turn] and lmd_tokenizer.eos_token_id == im_end
    else:
        # InternLM2: tokenizer eos is </s>; the end of turn comes only from generation_config.json
        assert chat_template.stop_words == ['</s>'] and lmd_tokenizer.eos_token_id != im_end
    # vlmtune's chat() stops on the same token
    assert im_end == tok.convert_tokens_to_ids(end_of_turn)


# ---------------------------------------------------------------------------------------------
# e. TurboMind path's vision encoder = the folder's own remote code, loaded by LMDeploy

def test_turbomind_vision_features_and_embedding_ranges(family, chat_template, lmd_tokenizer, ours, tmp_path):
    """`build_model()` loads the folder's modeling_internvl_chat.py through AutoModel + accelerate
    (device_map='auto' -> CPU here), drops the LLM, casts to fp16; `forward` runs extract_feature.
    Its features equal vlmtune's extract_feature in fp16 and are close to fp32."""
    from lmdeploy.vl.model.internvl import InternVLVisionModel
    model, tok = ours
    folder = family['folder']
    vm = InternVLVisionModel(folder, hf_config=AutoConfig.from_pretrained(folder, trust_remote_code=True),
                             backend='turbomind')
    vm.build_preprocessor()
    vm.build_model()
    assert type(vm.model).__module__.endswith('modeling_internvl_chat')  # the folder's file
    assert not hasattr(vm.model, 'language_model')
    assert next(vm.model.parameters()).dtype == torch.float16

    image = make_image(800, 600)
    msgs = vm.preprocess(lmd_messages(image))
    msgs = vm.forward(msgs)
    (features,) = msgs[-1]['content']
    pixel_values = tile_image(image, TilingConfig(image_size=IMAGE_SIZE, max_num=family['max_patch']))
    n_tiles = pixel_values.shape[0]
    assert features.shape == (n_tiles * NUM_IMAGE_TOKEN, model.spec.llm_config().hidden_size)

    with torch.no_grad():
        ref32 = model.extract_feature(pixel_values).reshape(features.shape)
        model16 = load(folder, dtype=torch.float16, with_tokenizer=False)[0]
        ref16 = model16.extract_feature(pixel_values.half()).reshape(features.shape)
    torch.testing.assert_close(features, ref16, rtol=0, atol=0)
    torch.testing.assert_close(features.float(), ref32, rtol=0, atol=5e-3)

    packed = vm.to_turbomind(msgs, chat_template, lmd_tokenizer, sequence_start=True)
    query = model.image_tokens.expand(model.prompt(Q2, [('<image>\n' + Q1, A1)]), [n_tiles])
    assert packed['input_ids'] == tok(query)['input_ids']
    ((begin, end),) = packed['input_embedding_ranges']
    assert end - begin == n_tiles * NUM_IMAGE_TOKEN
    assert packed['input_ids'][begin:end] == [vm.image_token_id] * (end - begin)
