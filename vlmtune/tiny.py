"""Tiny random InternVL models for tests and the embedded default, saved in any layout, or as parts
(an InternViT folder + a Qwen2 LLM folder) for building from parts; and LLaVA-style parts (a CLIP
or SigLIP tower folder + a Vicuna-style Llama folder with a SentencePiece tokenizer).

Tokenizers are trained here on a small built-in corpus (no downloads): a byte-level BPE saved as a
Qwen2 tokenizer for Qwen2/Llama/Phi3, a SentencePiece model for InternLM2, each with the chat
template's special tokens and the 9 InternVL tokens (added after the LLM's own specials).
"""
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .data.templates import get_template
from .data.templates.internvl import CHATML_TOKENS, SYSTEM_MESSAGE_V2, SYSTEM_MESSAGE_V25
from .formats import save
from .formats.parts import save_llm_folder, save_vision_folder
from .formats.tokenizers import INTERNVL_TOKENS
from .model.llm import REGISTRY as LLMS
from .model.spec import ModelSpec
from .model.vlm import VisionLanguageModel

# Every registered LLM family can be built tiny: its entry gives the family's config fields (tiny_config),
# its default template and how its tokenizer is trained (model/llm/entry.py).
CHATML_SPECIALS = list(CHATML_TOKENS)

CORPUS = [SYSTEM_MESSAGE_V2, SYSTEM_MESSAGE_V25,
          'What is in the image? A cat. What color is it? It is red, green, blue, yellow or white.',
          'Describe the picture. The dish in the picture is noodles with beef and rice.',
          'How many circles are there? There are 0 1 2 3 4 5 6 7 8 9 10 shapes: square, triangle, star.',
          'Answer with the option letter directly. (A) (B) (C) (D) A B C D yes no left right top bottom.',
          '图中的菜是什么？请直接回答选项字母。这道菜来自哪个地区？米饭 面条 饺子 包子 火锅 豆腐 鱼 鸡 牛肉',
          'The quick brown fox jumps over the lazy dog. Hello world! 1234567890 ,.;:?!-_()[]{}"\'/\\',
          'user assistant system image question answer the a an is are of in on with and or to']


@dataclass
class TinySpec:
    llm: str = 'qwen2'               # any registered LLM family (vlmtune.model.llm.REGISTRY)
    vit: str = '300m'                # 300m (LayerNorm, qkv bias) | 6b (RMSNorm, q/k norm)
    template: str = None             # default: the family entry's default_template
    image_size: int = 56
    patch_size: int = 14
    vit_width: int = 32
    vit_layers: int = 2
    vit_heads: int = 2
    llm_width: int = 64
    llm_layers: int = 2
    llm_heads: int = 4
    llm_kv_heads: int = 2
    llm_intermediate: int = 128
    vocab_size: int = 400
    ps_version: str = 'v2'
    select_layer: int = -1
    max_dynamic_patch: int = 6
    seed: int = 0
    extra_corpus: str = ''           # words the tokenizer should know well (task vocabulary)
    system_message: str = ''         # '' keeps the template's default; else written to config.json
    llm_vocab_rows: int = 0          # > tokenizer size: pad the embedding/head to a real model's shape
    llm_head_dim: int = 32           # Qwen3 only (its head_dim is explicit): >= 32, as real engines need
    llm_experts: int = 4             # MoE LLMs: experts per sparse layer, top-k, expert FFN width
    llm_experts_per_token: int = 2
    llm_moe_intermediate: int = 64


def train_bpe_tokenizer(specials, vocab_size, workdir: Path, corpus):
    """Byte-level BPE -> Qwen2TokenizerFast built from vocab.json/merges.txt (so slow files exist)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=['<|endoftext|>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    tok.model.save(str(workdir))
    fast = Qwen2TokenizerFast(vocab_file=str(workdir / 'vocab.json'), merges_file=str(workdir / 'merges.txt'),
                              unk_token=None, bos_token=None, eos_token=specials[-1], pad_token='<|endoftext|>')
    fast.add_special_tokens({'additional_special_tokens': specials})
    return fast


def train_sentencepiece_tokenizer(specials, vocab_size, workdir: Path, corpus):
    """SentencePiece BPE with byte fallback -> InternLM2Tokenizer (adds <s>)."""
    import sentencepiece as spm
    from .formats.internvl_remote.tokenization_internlm2 import InternLM2Tokenizer
    model_path = workdir / 'tokenizer.model'
    with open(model_path, 'wb') as handle:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus * 4), model_writer=handle,
                                       vocab_size=vocab_size, model_type='bpe', byte_fallback=True,
                                       character_coverage=1.0, user_defined_symbols=specials,
                                       unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False,
                                       # Keep newlines and spaces verbatim, as chat tokenizers must.
                                       normalization_rule_name='identity', add_dummy_prefix=False,
                                       remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                                       minloglevel=2)
    tok = InternLM2Tokenizer(vocab_file=str(model_path))
    tok.add_special_tokens({'additional_special_tokens': specials})
    return tok


def build_tokenizer(spec: TinySpec, template: str, workdir: Path, image_tokens: bool = True):
    specials = list(get_template(template).special_tokens) or CHATML_SPECIALS  # the end-of-turn token last
    corpus = CORPUS + [t for t in (spec.extra_corpus, spec.system_message) if t] * 8
    if LLMS.get(spec.llm).tiny_tokenizer == 'sentencepiece':
        # Byte fallback alone takes 256 pieces, so SentencePiece needs a larger vocabulary.
        tok = train_sentencepiece_tokenizer(specials, spec.vocab_size + 400, workdir, corpus)
    else:
        tok = train_bpe_tokenizer(specials, spec.vocab_size, workdir, corpus)
    if image_tokens:
        tok.add_tokens(INTERNVL_TOKENS, special_tokens=True)
    return tok


def llm_config_dict(spec: TinySpec, tokenizer) -> dict:
    """The fields every decoder-only tiny LLM shares, completed by the family entry's `tiny_config`."""
    entry = LLMS.get(spec.llm)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
    common = dict(architectures=[entry.architecture], vocab_size=max(len(tokenizer), spec.llm_vocab_rows),
                  hidden_size=spec.llm_width, intermediate_size=spec.llm_intermediate,
                  num_hidden_layers=spec.llm_layers, num_attention_heads=spec.llm_heads,
                  num_key_value_heads=spec.llm_kv_heads, max_position_embeddings=4096, rms_norm_eps=1e-6,
                  rope_theta=10000.0, bos_token_id=bos, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, initializer_range=0.02)
    return entry.tiny_config(common, spec)


def vision_config_dict(spec: TinySpec) -> dict:
    six_b = spec.vit == '6b'
    return dict(architectures=['InternVisionModel'], model_type='intern_vit_6b', image_size=spec.image_size,
                patch_size=spec.patch_size, hidden_size=spec.vit_width, num_attention_heads=spec.vit_heads,
                intermediate_size=spec.vit_width * 4, num_hidden_layers=spec.vit_layers, num_channels=3,
                qkv_bias=not six_b, qk_normalization=six_b, norm_type='rms_norm' if six_b else 'layer_norm',
                layer_norm_eps=1e-6, hidden_act='gelu', use_flash_attn=False, drop_path_rate=0.0, dropout=0.0,
                attention_dropout=0.0, initializer_range=0.02, initializer_factor=0.1)


def model_spec(spec: TinySpec, tokenizer, template: str) -> ModelSpec:
    return ModelSpec(
        vision_tower={'type': 'intern_vit', 'config': vision_config_dict(spec), 'select_layer': spec.select_layer},
        connector={'type': 'pixel_shuffle_mlp', 'downsample_ratio': 0.5, 'ps_version': spec.ps_version},
        llm={'type': spec.llm, 'config': llm_config_dict(spec, tokenizer)},
        image_processor={'type': 'internvl_dynamic', 'image_size': spec.image_size, 'min_tiles': 1,
                         'max_tiles': spec.max_dynamic_patch, 'use_thumbnail': True, 'dynamic': True},
        template={'type': template, **({'system_message': spec.system_message} if spec.system_message else {})})


def build_tiny_model(spec: TinySpec, image_tokens: bool = True):
    """-> (VisionLanguageModel with random fp32 weights, tokenizer). image_tokens=False: a tokenizer
    without the InternVL tokens (an LLM as released, for building from parts)."""
    if spec.llm not in LLMS:
        raise ValueError(f'unknown LLM family {spec.llm!r}; choose from {LLMS.names()}')
    if spec.vit not in ('300m', '6b'):
        raise ValueError(f"unknown ViT flavour {spec.vit!r}; choose '300m' or '6b'")
    template = spec.template or LLMS.get(spec.llm).default_template
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(spec, template, Path(tmp), image_tokens)
        # Keep the tokenizer usable after the temp dir goes: reload it from a saved copy in memory.
        tokenizer = _detach_from_dir(tokenizer, Path(tmp))
    torch.manual_seed(spec.seed)
    model = VisionLanguageModel(model_spec(spec, tokenizer, template)).float().eval()
    with torch.no_grad():  # the vision stem's class/position embeddings otherwise start as N(0, 1)
        model.vision_tower.embeddings.class_embedding.normal_(0.0, 0.02)
        model.vision_tower.embeddings.position_embedding.normal_(0.0, 0.02)
    if image_tokens:
        model.set_tokenizer(tokenizer)
    return model, tokenizer


def _detach_from_dir(tokenizer, tmp: Path):
    """Tokenizers keep a path to their vocab file; copy it somewhere that outlives `tmp`."""
    keep = Path(tempfile.mkdtemp(prefix='vlmtune-tok-'))
    tokenizer.save_pretrained(str(keep))
    return type(tokenizer).from_pretrained(str(keep))


def make_tiny_folder(out_dir, spec: TinySpec = None, dtype='fp32', overwrite=False, layout='internvl') -> Path:
    spec = spec or TinySpec()
    model, tokenizer = build_tiny_model(spec)
    out = save(model, tokenizer, out_dir, layout=layout, dtype=dtype, overwrite=overwrite)
    (out / 'tiny_spec.json').write_text(json.dumps(spec.__dict__, indent=2), encoding='utf-8')
    return out


def make_tiny_parts(out_dir, spec: TinySpec = None) -> dict:
    """An InternViT folder and a transformers LLM folder (tokenizer without the image tokens), as a
    vision tower and an LLM are released on their own. -> {'vision_tower': path, 'llm': path}."""
    spec = spec or TinySpec()
    model, tokenizer = build_tiny_model(spec, image_tokens=False)
    out = Path(out_dir)
    return {'vision_tower': save_vision_folder(model, out / 'vision_tower'),
            'llm': save_llm_folder(model, tokenizer, out / 'llm')}


# --- LLaVA parts: CLIP / SigLIP tower folders, a Vicuna-style Llama folder -------------------------
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions.")
# `USER` only right after `</s>`: as in Llama-2's vocabulary, `USER` is one piece and `▁USER` two,
# which LLaVA's non-legacy round arithmetic (vicuna_v1) relies on.
LLAVA_CORPUS = CORPUS + [VICUNA_SYSTEM, 'What is in the image? ASSISTANT: A cat.</s>USER: What color is it? '
                         'ASSISTANT: It is red.</s>USER: why ASSISTANT: because</s>USER: what']
# Per tower: transformers classes and the released family's shape-free fields.
TOWERS = {'clip': ('CLIPVisionModel', 'CLIPVisionConfig', 336, dict(hidden_act='quick_gelu', layer_norm_eps=1e-5)),
          'siglip': ('SiglipVisionModel', 'SiglipVisionConfig', 384,
                     dict(hidden_act='gelu_pytorch_tanh', layer_norm_eps=1e-6))}


@dataclass
class TinyLlavaSpec:
    tower: str = 'clip'              # clip | siglip
    image_size: int = 0              # 0: the released size (CLIP 336, SigLIP 384) so token counts are real
    patch_size: int = 14
    vit_width: int = 32
    vit_layers: int = 3
    vit_heads: int = 2
    llm_width: int = 128             # head_dim 32: real engines can serve it
    llm_layers: int = 2
    llm_heads: int = 4
    llm_kv_heads: int = 4            # multi-head attention, as Vicuna-7B
    llm_intermediate: int = 256
    vocab_size: int = 600            # SentencePiece pieces (byte fallback takes 256 of them)
    legacy: bool = False             # LlamaTokenizer's `legacy` flag
    seed: int = 0


def make_tiny_tower_folder(out_dir, spec: TinyLlavaSpec = None) -> Path:
    """transformers' own save_pretrained of a random CLIPVisionModel / SiglipVisionModel."""
    import transformers
    spec = spec or TinyLlavaSpec()
    if spec.tower not in TOWERS:
        raise ValueError(f'unknown tower {spec.tower!r}; choose from {sorted(TOWERS)}')
    model_name, config_name, released_size, fields = TOWERS[spec.tower]
    config = getattr(transformers, config_name)(
        hidden_size=spec.vit_width, intermediate_size=spec.vit_width * 4, num_hidden_layers=spec.vit_layers,
        num_attention_heads=spec.vit_heads, image_size=spec.image_size or released_size,
        patch_size=spec.patch_size, num_channels=3, **fields)
    torch.manual_seed(spec.seed)
    out = Path(out_dir)
    getattr(transformers, model_name)(config).save_pretrained(str(out), safe_serialization=True)
    return out


def train_llama_tokenizer(vocab_size: int, workdir: Path, corpus, legacy: bool = False):
    """A Llama-style SentencePiece BPE (<unk> 0, <s> 1, </s> 2, byte fallback, dummy prefix, split
    digits) as LlamaTokenizerFast; its folder also holds tokenizer.model for LlamaTokenizer."""
    import sentencepiece as spm
    from transformers import LlamaTokenizerFast
    model_path = workdir / 'tokenizer.model'
    with open(model_path, 'wb') as handle:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus * 4), model_writer=handle,
                                       vocab_size=vocab_size, model_type='bpe', byte_fallback=True,
                                       split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
                                       pad_id=-1, hard_vocab_limit=False, normalization_rule_name='identity',
                                       add_dummy_prefix=True, remove_extra_whitespaces=False,
                                       allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2)
    return LlamaTokenizerFast(vocab_file=str(model_path), from_slow=True, legacy=legacy, add_bos_token=True,
                              add_eos_token=False, add_prefix_space=True, pad_token=None,
                              clean_up_tokenization_spaces=False,
                              model_max_length=4096)


def make_tiny_llama_folder(out_dir, spec: TinyLlavaSpec = None) -> Path:
    """A random LlamaForCausalLM (transformers' save_pretrained) with a Llama SentencePiece tokenizer,
    shaped like a Vicuna release (pad_token_id 0 in the config, no pad token in the tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    spec = spec or TinyLlavaSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_llama_tokenizer(spec.vocab_size, Path(tmp), LLAVA_CORPUS, spec.legacy)
        tokenizer.save_pretrained(str(out))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.llm_width, intermediate_size=spec.llm_intermediate,
                         num_hidden_layers=spec.llm_layers, num_attention_heads=spec.llm_heads,
                         num_key_value_heads=spec.llm_kv_heads, max_position_embeddings=4096, rms_norm_eps=1e-5,
                         rope_theta=10000.0, hidden_act='silu', bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=False, initializer_range=0.02)
    torch.manual_seed(spec.seed)
    LlamaForCausalLM(config).save_pretrained(str(out), safe_serialization=True)
    return out


def make_tiny_llava_parts(out_dir, tower: str = None, spec: TinyLlavaSpec = None) -> dict:
    """A tiny CLIP or SigLIP tower folder and a tiny Vicuna-style LLM folder (no <image> token: building
    from parts adds the template's). -> {'vision_tower': path, 'llm': path}."""
    spec = spec or TinyLlavaSpec()
    spec = replace(spec, tower=tower) if tower else spec
    out = Path(out_dir)
    return {'vision_tower': make_tiny_tower_folder(out / 'vision_tower', spec),
            'llm': make_tiny_llama_folder(out / 'llm', spec)}


def make_tiny_llava_folder(out_dir, spec: TinyLlavaSpec = None, next_: bool = False, layout: str = None) -> Path:
    """A whole tiny LLaVA-1.5 (or, next_=True, LLaVA-NeXT: anyres + spatial_unpad) model with random
    weights, built from tiny parts and saved in its natural layout (llava_hf / llava_next_hf)."""
    from .formats.parts import build_model
    spec = spec or TinyLlavaSpec()
    out = Path(out_dir)
    parts = make_tiny_llava_parts(out.parent / f'.{out.name}-parts', spec=spec)
    size = spec.image_size or TOWERS[spec.tower][2]
    torch.manual_seed(spec.seed)
    model, tokenizer = build_model(spec=dict(
        vision_tower=dict(type=spec.tower, pretrained=str(parts['vision_tower'])), connector=dict(type='mlp2x_gelu'),
        llm=dict(type='llama', pretrained=str(parts['llm'])),
        image_processor=dict(type='anyres' if next_ else 'pad', image_size=size,
                             **({'grid_pinpoints': [[size, 2 * size], [2 * size, size], [2 * size, 2 * size]]}
                                if next_ else {})),
        template=dict(type='vicuna_v1')))
    return save(model, tokenizer, out, layout=layout, dtype='fp32')
