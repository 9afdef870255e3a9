"""Tiny LLaVA-style parts and models: a CLIP or SigLIP tower folder (transformers' own save_pretrained, the
tower class's release fields), a Vicuna-style Llama folder with a SentencePiece tokenizer, and a whole tiny
LLaVA-1.5 / LLaVA-NeXT folder composed from them.
"""
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..formats import save
from ..model.vision_tower import REGISTRY as VISION_TOWERS
from .tokenizers import LLAVA_CORPUS, train_llama_tokenizer

LLAVA_TOWERS = ('clip', 'siglip')  # the towers LLaVA's layouts hold


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
    """transformers' own save_pretrained of a random CLIPVisionModel / SiglipVisionModel (the tower class
    says its transformers classes, released size and shape-free fields)."""
    spec = spec or TinyLlavaSpec()
    if spec.tower not in LLAVA_TOWERS:
        raise ValueError(f'unknown tower {spec.tower!r}; choose from {list(LLAVA_TOWERS)}')
    tower = VISION_TOWERS.get(spec.tower)
    config = tower.config_class(**tower.tiny_config(spec.image_size, spec.vit_width, spec.vit_layers, spec.vit_heads,
                                                    spec.patch_size))
    torch.manual_seed(spec.seed)
    out = Path(out_dir)
    tower.model_class(config).save_pretrained(str(out), safe_serialization=True)
    return out


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
    from ..engine.model_source import build_model
    spec = spec or TinyLlavaSpec()
    out = Path(out_dir)
    parts = make_tiny_llava_parts(out.parent / f'.{out.name}-parts', spec=spec)
    size = spec.image_size or VISION_TOWERS.get(spec.tower).RELEASED_SIZE
    torch.manual_seed(spec.seed)
    model, tokenizer = build_model(spec=dict(
        vision_tower=dict(type=spec.tower, pretrained=str(parts['vision_tower'])), connector=dict(type='mlp2x_gelu'),
        llm=dict(type='llama', pretrained=str(parts['llm'])),
        image_processor=dict(type='anyres' if next_ else 'pad', image_size=size,
                             **({'grid_pinpoints': [[size, 2 * size], [2 * size, size], [2 * size, 2 * size]]}
                                if next_ else {})),
        template=dict(type='vicuna_v1')))
    return save(model, tokenizer, out, layout=layout, dtype='fp32')
