"""Tiny hub-style llava-hf / llava-next-hf folders built by transformers 4.48's own classes (random
weights, a locally trained tokenizer with `<image>`, the processor files), for the llava layout tests:
Llama + CLIP (LLaVA-1.5 shape), tied Qwen2 + CLIP with asymmetric pinpoints (LLaVA-NeXT), Llama +
SigLIP ('full' strategy, SigLIP's own image processor). Also stand-ins for the LLaVA templates until
their files land (the real definitions win when registered).
"""
import json

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image
from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast,
                          LlavaConfig, LlavaForConditionalGeneration, LlavaNextConfig,
                          LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor,
                          LlavaProcessor, Qwen2Config, Qwen2ForCausalLM, SiglipImageProcessor, SiglipVisionConfig)

from vlmtune.data.templates import REGISTRY as TEMPLATES
from vlmtune.data.templates import Template, register
from vlmtune.formats import llava_hf, llava_next_hf
from vlmtune.tiny import CHATML_SPECIALS, CORPUS, train_bpe_tokenizer

SIZE, PATCH = 56, 14
PER_TILE = (SIZE // PATCH) ** 2  # 16: CLS dropped ('default')
NAMES = ['flat', 'tiled', 'siglip']
PINPOINTS_HW = [[56, 112], [112, 56], [112, 112], [168, 56]]  # transformers' order; asymmetric on purpose
QUESTION = 'What is in the image?'
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions.")
# llava-hf/llava-1.5-7b-hf's processor template (images first, then text)
HUB_TEMPLATE = ("{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
                "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
                "{{ '<image>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', "
                "'text') %}{{ content['text'] + ' ' }}{% endfor %}{% endfor %}"
                "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
CORPUS_EXTRA = [VICUNA_SYSTEM, 'USER: ASSISTANT: <image>'] * 4

# Stand-ins until the template files land; the real definitions take their place when registered.
if 'vicuna_v1' not in TEMPLATES:
    register(Template(name='vicuna_v1', system_prefix='', system_message=VICUNA_SYSTEM,
                      roles=('USER: ', 'ASSISTANT: '), sep=' ', sep2='</s>', stop_tokens=('</s>',),
                      open_role='ASSISTANT:', image_tokens=('', '<image>', ''), added_tokens=('<image>',)))
if 'test_llava_chatml' not in TEMPLATES:
    register(Template(name='test_llava_chatml', system_prefix='<|im_start|>system\n',
                      system_message='You are a helpful assistant.',
                      roles=('<|im_start|>user\n', '<|im_start|>assistant\n'), sep='<|im_end|>\n',
                      stop_tokens=('<|im_end|>',), image_tokens=('', '<image>', ''), added_tokens=('<image>',)))


def image(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def llama_tokenizer(workdir):
    """A tiny SentencePiece Llama tokenizer (dummy prefix, byte fallback) with <image> and <pad>."""
    model = workdir / 'tokenizer.model'
    with open(model, 'wb') as handle:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter((CORPUS + CORPUS_EXTRA) * 4), model_writer=handle, vocab_size=500,
            model_type='bpe', byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            hard_vocab_limit=False, normalization_rule_name='identity', add_dummy_prefix=True,
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, minloglevel=2)
    tok = LlamaTokenizerFast(vocab_file=str(model), legacy=False)
    tok.add_tokens(['<image>'], special_tokens=True)
    tok.add_special_tokens({'pad_token': '<pad>'})
    return tok


def vision_config():
    return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=SIZE, patch_size=PATCH, projection_dim=32)


def clip_processor():
    return CLIPImageProcessor(size={'shortest_edge': SIZE}, crop_size={'height': SIZE, 'width': SIZE})


def build_hubs(root):
    """name -> (adapter, folder, model class, LLM class): folders as llava-hf publishes them (no record)."""
    torch.manual_seed(0)
    (root / 'tok-a').mkdir()
    tok = llama_tokenizer(root / 'tok-a')
    flat_text = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                            pad_token_id=tok.pad_token_id)  # head_dim 64: what TurboMind accepts
    cfg = LlavaConfig(vision_config=vision_config(), text_config=flat_text, vision_feature_layer=-2,
                      image_token_index=tok.convert_tokens_to_ids('<image>'), image_seq_length=PER_TILE)
    flat = root / 'tinyvl-a'
    LlavaForConditionalGeneration(cfg).save_pretrained(flat)
    LlavaProcessor(image_processor=clip_processor(), tokenizer=tok, patch_size=PATCH,
                   vision_feature_select_strategy='default', num_additional_image_tokens=1,
                   chat_template=HUB_TEMPLATE).save_pretrained(flat)

    (root / 'tok-b').mkdir()
    qtok = train_bpe_tokenizer(CHATML_SPECIALS, 400, root / 'tok-b', CORPUS + CORPUS_EXTRA)
    qtok.add_tokens(['<image>'], special_tokens=True)
    text = Qwen2Config(vocab_size=len(qtok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                       max_position_embeddings=2048)
    cfg = LlavaNextConfig(vision_config=vision_config(), text_config=text, vision_feature_layer=-2,
                          image_token_index=qtok.convert_tokens_to_ids('<image>'), image_grid_pinpoints=PINPOINTS_HW,
                          image_seq_length=PER_TILE)
    tiled = root / 'tinyvl-b'
    LlavaNextForConditionalGeneration(cfg).save_pretrained(tiled)
    processor = LlavaNextImageProcessor(size={'shortest_edge': SIZE}, crop_size={'height': SIZE, 'width': SIZE},
                                        image_grid_pinpoints=PINPOINTS_HW)
    LlavaNextProcessor(image_processor=processor, tokenizer=qtok, patch_size=PATCH,
                       vision_feature_select_strategy='default', num_additional_image_tokens=1,
                       chat_template=HUB_TEMPLATE).save_pretrained(tiled)

    # SigLIP (no CLS): all patches ('full'), its own processor (plain resize, mean/std 0.5), last layer
    siglip = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=SIZE, patch_size=PATCH)
    cfg = LlavaConfig(vision_config=siglip, text_config=flat_text, vision_feature_layer=-1,
                      vision_feature_select_strategy='full', image_token_index=tok.convert_tokens_to_ids('<image>'),
                      image_seq_length=PER_TILE)
    plain = root / 'tinyvl-c'
    LlavaForConditionalGeneration(cfg).save_pretrained(plain)
    LlavaProcessor(image_processor=SiglipImageProcessor(size={'height': SIZE, 'width': SIZE}), tokenizer=tok,
                   patch_size=PATCH, vision_feature_select_strategy='full', num_additional_image_tokens=0,
                   chat_template=HUB_TEMPLATE).save_pretrained(plain)
    return {'flat': (llava_hf, flat, LlavaForConditionalGeneration, LlamaForCausalLM),
            'siglip': (llava_hf, plain, LlavaForConditionalGeneration, LlamaForCausalLM),
            'tiled': (llava_next_hf, tiled, LlavaNextForConditionalGeneration, Qwen2ForCausalLM)}


def messages(text=QUESTION):
    return [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': text}]}]


def hubs_image_id(folder):
    return json.loads((folder / 'config.json').read_text())['image_token_index']


def expand2square(picture, mean):
    """LLaVA's pad: centred on a square canvas of the mean colour (seed-systems §1)."""
    width, height = picture.size
    side = max(width, height)
    canvas = Image.new(picture.mode, (side, side), tuple(int(x * 255) for x in mean))
    canvas.paste(picture, ((side - width) // 2, (side - height) // 2))
    return canvas


def write(adapter, spec, state, tokenizer, out):
    out.mkdir(parents=True)
    adapter.write(out, spec, state, tokenizer, torch.float32, 5 * 1024 ** 3)
    return out


def write_folders(hubs, root):
    """Per hub folder, through the adapters under test: its spec and package state, and the folders
    written from them with the hub's template and with ours (vicuna_v1 + pad for LLaVA, a ChatML
    template for NeXT, vicuna_v1 without system message for SigLIP)."""
    ours = {'flat': {'template': {'type': 'vicuna_v1'}, 'image_processor': {'type': 'pad', 'image_size': SIZE}},
            'tiled': {'template': {'type': 'test_llava_chatml', 'system_message': 'Answer briefly.'}},
            'siglip': {'template': {'type': 'vicuna_v1', 'system_message': ''}}}
    out = {}
    for name, (adapter, folder, _, _) in hubs.items():
        spec, tokenizer = adapter.read_spec(folder), adapter.load_tokenizer(folder)
        state = adapter.from_layout(adapter.read_state(folder), spec)
        own_spec = spec.override(ours[name])
        out[name] = dict(spec=spec, state=state, own_spec=own_spec,
                         hub_tpl=write(adapter, spec, state, tokenizer, root / f'tinyvl-{name}-1'),
                         ours=write(adapter, own_spec, state, tokenizer, root / f'tinyvl-{name}-2'))
    return out
