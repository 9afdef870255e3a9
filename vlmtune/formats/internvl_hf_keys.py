"""State-dict key maps between the official InternVL layout and transformers' native
`InternVLForConditionalGeneration` (see `internvl_hf` for the whole conversion). Bitwise both ways:
renames, plus row splits/concatenations of the fused ViT `attn.qkv` and InternLM2 `wqkv`.
"""
import re

import torch

from ..model.llm.internlm2_keys import fuse_wqkv, split_wqkv

OWN_KEY = 'vlmtune'  # the -hf config.json key that keeps what only the official layout knows


def text_types() -> dict:
    """LLM architecture -> the -hf text_config model_type, for the LLMs the official layout holds: the
    family's own, or the transformers family that computes it (the entry's hf_text_type: InternLM2 -> llama)."""
    from .internvl import held_llms
    return {entry.architecture: entry.hf_text_type or entry.model_type for entry in held_llms()}


def architecture_of_text_type(model_type: str):
    """An -hf text model_type -> the official LLM architecture of that family (None if none)."""
    from .internvl import held_llms
    return next((e.architecture for e in held_llms() if e.hf_text_type is None and e.model_type == model_type), None)


def converted(architecture: str) -> bool:
    """Does the -hf text model come from another family than the official LLM (fused weights to split)?"""
    return text_types()[architecture] != _entry(architecture).model_type


def _entry(architecture: str):
    from ..model.llm import REGISTRY, family_of
    return REGISTRY.get(family_of(architecture))


def _arch(llm: dict) -> str:
    arch = (llm.get('architectures') or [None])[0]
    if arch not in text_types():
        raise ValueError(f'internvl_hf: LLM {arch!r} is not supported; supported: {sorted(text_types())}')
    return arch


VIT_TOP = {'embeddings.class_embedding': 'embeddings.cls_token',
           'embeddings.position_embedding': 'embeddings.position_embeddings',
           'embeddings.patch_embedding.weight': 'embeddings.patch_embeddings.projection.weight',
           'embeddings.patch_embedding.bias': 'embeddings.patch_embeddings.projection.bias'}
VIT_LAYER = {'ls1': 'lambda_1', 'ls2': 'lambda_2', 'attn.q_norm.weight': 'attention.q_norm.weight',
             'attn.k_norm.weight': 'attention.k_norm.weight',
             **{f'{a}.{p}': f'{b}.{p}' for p in ('weight', 'bias') for a, b in (
                 ('attn.proj', 'attention.projection_layer'), ('mlp.fc1', 'mlp.fc1'), ('mlp.fc2', 'mlp.fc2'),
                 ('norm1', 'layernorm_before'), ('norm2', 'layernorm_after'))}}
PROJECTOR = {f'{i}.{p}': f'{name}.{p}' for p in ('weight', 'bias')
             for i, name in ((0, 'layer_norm'), (1, 'linear_1'), (3, 'linear_2'))}
INTERNLM2_TOP = {'model.tok_embeddings.weight': 'model.language_model.embed_tokens.weight',
                 'model.norm.weight': 'model.language_model.norm.weight', 'output.weight': 'lm_head.weight'}
INTERNLM2_LAYER = {'attention.wo.weight': 'self_attn.o_proj.weight', 'attention.wo.bias': 'self_attn.o_proj.bias',
                   'feed_forward.w1.weight': 'mlp.gate_proj.weight', 'feed_forward.w3.weight': 'mlp.up_proj.weight',
                   'feed_forward.w2.weight': 'mlp.down_proj.weight', 'attention_norm.weight': 'input_layernorm.weight',
                   'ffn_norm.weight': 'post_attention_layernorm.weight'}
LEGACY_HF = [('language_model.model.', 'model.language_model.'), ('language_model.lm_head.', 'lm_head.'),
             ('vision_tower.', 'model.vision_tower.'), ('multi_modal_projector.', 'model.multi_modal_projector.')]


def _rules(internlm2: bool):
    """(official prefix, hf prefix, whole renames or None = any suffix, layer prefixes (official, hf),
    per-layer renames, fused per-layer (official, hf, how to split)). One table drives both ways."""
    rules = [('vision_model.', 'model.vision_tower.', VIT_TOP, ('encoder.layers.', 'encoder.layer.'), VIT_LAYER,
              ('attn.qkv', 'attention', 'rows')),
             ('mlp1.', 'model.multi_modal_projector.', PROJECTOR, None, {}, None)]
    if internlm2:
        return rules + [('language_model.', '', INTERNLM2_TOP, ('model.layers.', 'model.language_model.layers.'),
                         INTERNLM2_LAYER, ('attention.wqkv', 'self_attn', 'kv_groups'))]
    return rules + [('language_model.lm_head.', 'lm_head.', None, None, {}, None),
                    ('language_model.model.', 'model.language_model.', None, None, {}, None)]


def _map_key(key: str, rules, to_hf: bool):
    """-> (new key, None) | ([q, k, v keys], how) when splitting | ((fused key, 'q'|'k'|'v'), how) when fusing."""
    for o_pre, h_pre, top, layers, layer, fused in rules:
        src, dst = (o_pre, h_pre) if to_hf else (h_pre, o_pre)
        if not key.startswith(src):
            continue
        rest = key[len(src):]
        if top is None:
            return dst + rest, None
        table = top if to_hf else _invert(top)
        if rest in table:
            return dst + table[rest], None
        s_lay, d_lay = (layers if to_hf else layers[::-1]) if layers else (None, None)
        if not s_lay or not re.match(rf'{re.escape(s_lay)}\d+\.', rest):
            continue
        number, sub = rest[len(s_lay):].split('.', 1)
        base = f'{dst}{d_lay}{number}.'
        table = layer if to_hf else _invert(layer)
        if sub in table:
            return base + table[sub], None
        o_fused, h_fused, how = fused
        if to_hf and sub in (f'{o_fused}.weight', f'{o_fused}.bias'):
            return [f'{base}{h_fused}.{c}_proj.{sub.rsplit(".", 1)[1]}' for c in 'qkv'], how
        match = re.fullmatch(rf'{re.escape(h_fused)}\.([qkv])_proj\.(weight|bias)', sub)
        if not to_hf and match:
            return (f'{base}{o_fused}.{match.group(2)}', match.group(1)), how
    raise ValueError(f"internvl_hf: unknown {'official' if to_hf else '-hf'} key {key}")


def _heads(llm: dict):
    heads = llm['num_attention_heads']
    kv = llm.get('num_key_value_heads') or heads
    return heads, kv, llm.get('head_dim') or llm['hidden_size'] // heads


def _split(t, how, heads, kv, dim):
    if how == 'rows':  # InternViT: rows q|k|v
        return [part.contiguous() for part in t.chunk(3, dim=0)]
    return [part.contiguous() for part in split_wqkv(t, heads, kv)]  # InternLM2: grouped per KV head


def _fuse(q, k, v, how, heads, kv, dim):
    if how == 'rows':
        return torch.cat([q, k, v])
    return fuse_wqkv(q, k, v, heads, kv).contiguous()


def _invert(table: dict) -> dict:
    return {v: k for k, v in table.items()}


def state_to_hf(state: dict, official: dict) -> dict:
    """Official state dict -> the -hf class's state dict (bitwise: splits only copy rows)."""
    rules = _rules(converted(_arch(official['llm_config'])))
    heads = _heads(official['llm_config'])
    out = {}
    for key, t in state.items():
        new, how = _map_key(key, rules, to_hf=True)
        if how:
            out.update(zip(new, _split(t, how, *heads)))
        else:
            out[new] = t
    return out


def state_from_hf(state: dict, hf: dict) -> dict:
    """-hf state dict (5.x names, or the older names 4.57's save_pretrained writes) -> official."""
    arch = (hf.get(OWN_KEY) or {}).get('llm_architecture') or architecture_of_text_type(hf['text_config'].get('model_type'))
    internlm2 = converted(arch)
    rules, heads = _rules(internlm2), _heads(hf['text_config'])
    out, fused = {}, {}
    for key, t in state.items():
        for old, new in LEGACY_HF:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        new, how = _map_key(key, rules, to_hf=False)
        if how:
            fused.setdefault((new[0], how), {})[new[1]] = t
        else:
            out[new] = t
    for (key, how), parts in fused.items():
        if set(parts) != set('qkv'):
            raise ValueError(f'internvl_hf: {key} lacks one of its q/k/v_proj parts')
        out[key] = _fuse(parts['q'], parts['k'], parts['v'], how, *heads)
    head = 'language_model.output.weight' if internlm2 else 'language_model.lm_head.weight'
    embed = 'language_model.model.tok_embeddings.weight' if internlm2 else 'language_model.model.embed_tokens.weight'
    if head not in out and embed in out:  # a tied -hf checkpoint: official heads are always untied
        out[head] = out[embed].clone()
    return out
