"""InternLM2's official parameter names <-> the package's (transformers' Llama names with the fused
per-KV-head `wqkv` kept), on LLM-relative keys; and wqkv <-> q/k/v for layouts that split it."""
import re

import torch

# official suffix -> package suffix, per decoder layer
LAYER_NAMES = {'attention.wqkv': 'self_attn.wqkv', 'attention.wo': 'self_attn.o_proj', 'feed_forward.w1': 'mlp.gate_proj',
               'feed_forward.w3': 'mlp.up_proj', 'feed_forward.w2': 'mlp.down_proj',
               'attention_norm': 'input_layernorm', 'ffn_norm': 'post_attention_layernorm'}
TOP_NAMES = {'model.tok_embeddings.weight': 'model.embed_tokens.weight', 'output.weight': 'lm_head.weight',
             'model.norm.weight': 'model.norm.weight'}
_LAYER = re.compile(r'^(model\.layers\.\d+\.)(.+)\.(weight|bias)$')


def _rename(key: str, top: dict, layer: dict) -> str:
    if key in top:
        return top[key]
    match = _LAYER.match(key)
    if match and match.group(2) in layer:
        return f'{match.group(1)}{layer[match.group(2)]}.{match.group(3)}'
    raise KeyError(key)


def from_official(state: dict) -> dict:
    """Official InternLM2 keys -> package keys; an unknown key raises KeyError naming it."""
    return {_rename(k, TOP_NAMES, LAYER_NAMES): v for k, v in state.items()}


def to_official(state: dict) -> dict:
    top = {v: k for k, v in TOP_NAMES.items()}
    layer = {v: k for k, v in LAYER_NAMES.items()}
    return {_rename(k, top, layer): v for k, v in state.items()}


def split_wqkv(wqkv: torch.Tensor, num_heads: int, num_kv_heads: int):
    """Fused per-KV-head `wqkv` rows (weight or bias) -> (q, k, v) rows in plain head order."""
    head_dim = wqkv.shape[0] // (num_heads + 2 * num_kv_heads)
    groups = num_heads // num_kv_heads
    w = wqkv.reshape(num_kv_heads, groups + 2, head_dim, *wqkv.shape[1:])
    q = w[:, :groups].reshape(num_heads * head_dim, *wqkv.shape[1:])
    k = w[:, groups].reshape(num_kv_heads * head_dim, *wqkv.shape[1:])
    v = w[:, groups + 1].reshape(num_kv_heads * head_dim, *wqkv.shape[1:])
    return q, k, v


def fuse_wqkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, num_kv_heads: int):
    """Inverse of `split_wqkv`."""
    head_dim, groups, rest = q.shape[0] // num_heads, num_heads // num_kv_heads, q.shape[1:]
    parts = [q.reshape(num_kv_heads, groups, head_dim, *rest), k.reshape(num_kv_heads, 1, head_dim, *rest),
             v.reshape(num_kv_heads, 1, head_dim, *rest)]
    return torch.cat(parts, dim=1).reshape(-1, *rest)
