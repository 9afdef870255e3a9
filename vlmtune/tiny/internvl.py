"""Tiny random InternVL models for tests and the embedded default (InternViT -> pixel shuffle MLP -> any
registered LLM family), saved in any layout, or as parts (an InternViT folder + an LLM folder) for building
from parts. Each LLM family's entry gives its tiny config fields, default template and tokenizer kind;
the tokenizer gets the template's special tokens and the 9 InternVL tokens (after the LLM's own specials).
"""
import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.templates import get_template
from ..formats import save
from ..formats.part_folders import save_llm_folder, save_vision_folder
from ..model.llm import REGISTRY as LLMS
from ..model.spec import ModelSpec
from ..model.vision_tower.intern_vit import InternViT
from ..model.vlm import VisionLanguageModel
from .tokenizers import (CHATML_SPECIALS, CORPUS, LLAVA_CORPUS, train_bpe_tokenizer, train_llama_tokenizer,
                         train_sentencepiece_tokenizer)

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


def build_tokenizer(spec: TinySpec, template: str, workdir: Path, image_tokens: bool = True):
    """The kind of tokenizer the LLM entry says (`tiny_tokenizer`), with the template's special tokens (the
    end-of-turn token last: the tokenizer's EOS) and, image_tokens: the tokens the template's family adds."""
    template = get_template(template)
    end = template.stop_tokens[0] if template.stop_tokens else ''  # (hf_chat_template: the tokenizer's own)
    specials = list(template.special_tokens) or ([end] if end.startswith('<') and end.endswith('>') else CHATML_SPECIALS)
    corpus = CORPUS + [t for t in (spec.extra_corpus, spec.system_message) if t] * 8
    kind = LLMS.get(spec.llm).tiny_tokenizer
    if callable(kind):  # the family's own kind (its entry file builds it)
        tok = kind(specials, spec.vocab_size, workdir, corpus)
    elif kind == 'sentencepiece':
        # Byte fallback alone takes 256 pieces, so SentencePiece needs a larger vocabulary.
        tok = train_sentencepiece_tokenizer(specials, spec.vocab_size + 400, workdir, corpus)
    elif kind == 'llama':  # SentencePiece with <s> added and a dummy prefix (Llama, Gemma)
        tok = train_llama_tokenizer(spec.vocab_size + 400, workdir, LLAVA_CORPUS + corpus)
        tok.add_special_tokens({'additional_special_tokens': specials, 'eos_token': specials[-1],
                                'pad_token': tok.unk_token})
    else:
        tok = train_bpe_tokenizer(specials, spec.vocab_size, workdir, corpus)
    if image_tokens:
        tok.add_tokens(list(template.added_tokens), special_tokens=True)
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
    return InternViT.tiny_settings(spec.image_size, spec.vit, spec.vit_width, spec.vit_layers, spec.vit_heads,
                                   spec.patch_size)['config']


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
    """Tokenizers keep a path to their vocab file (SentencePiece ones reload from it); copy it to a folder that
    outlives `tmp` and is removed when the process ends."""
    keep = tempfile.mkdtemp(prefix='vlmtune-tok-')
    atexit.register(shutil.rmtree, keep, True)
    tokenizer.save_pretrained(keep)
    return type(tokenizer).from_pretrained(keep)


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
