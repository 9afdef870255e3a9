"""Per-sample attention for packed rows, registered with transformers as `sdpa_packed`.

A packed row carries a block-diagonal causal mask (data/collate.py). Dense SDPA over it costs
O(row_length^2) per layer, most of it on pairs the mask throws away; without flash-attn's varlen
kernels (CPU, or GPUs without flash-attn) that makes packing slower than padding. This runs causal
SDPA on each sample's block instead, so the cost is the sum of the samples' own squares. Any other
mask (padded batches, generation with a cache) goes to transformers' plain SDPA unchanged. On CPU in
half precision, attention with a backward to come runs in fp32 (model/cpu_half.py).
"""
import inspect
import types

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

from .cpu_half import differentiable_attention

NAME = 'sdpa_packed'
_last = {'mask': None, 'segments': None}  # every layer gets the same mask tensor: split it once


def block_segments(mask: torch.Tensor):
    """[(start, end)] when `mask` ([1, 1, L, L], additive or bool) is block-diagonal causal, else None."""
    if mask.dim() != 4 or mask.shape[0] != 1 or mask.shape[-1] != mask.shape[-2]:
        return None
    allowed = mask[0, 0] if mask.dtype == torch.bool else mask[0, 0] == 0
    length, device = allowed.shape[0], allowed.device
    starts = allowed.int().argmax(-1)  # first key each query may see
    cuts = (starts == torch.arange(length, device=device)).nonzero().flatten().tolist() + [length]
    segments = list(zip(cuts[:-1], cuts[1:]))
    # Checked where the mask lives: no copy of an L x L mask off the GPU every step.
    segment_of = torch.repeat_interleave(torch.arange(len(segments), device=device),
                                         torch.tensor([end - start for start, end in segments], device=device))
    expected = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    expected &= segment_of[:, None] == segment_of[None, :]
    return segments if torch.equal(expected, allowed) else None


def packed_sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                        **kwargs):
    def dense(q, k, v, mask):
        return sdpa_attention_forward(module, q, k, v, mask, dropout=dropout, scaling=scaling, is_causal=is_causal,
                                      **kwargs)
    if attention_mask is None or query.shape[2] != key.shape[2] or query.shape[0] != 1:
        return differentiable_attention(dense, query, key, value, attention_mask)
    if _last['mask'] is not attention_mask:
        _last.update(mask=attention_mask, segments=block_segments(attention_mask))
    segments = _last['segments']
    if segments is None or len(segments) == 1:
        return differentiable_attention(dense, query, key, value, attention_mask)
    groups = getattr(module, 'num_key_value_groups', 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    pieces = []
    for start, end in segments:
        if end - start == 1:  # one key: softmax is 1, the output is the value (padding tokens)
            pieces.append(value[:, :, start:end])
        else:
            pieces.append(differentiable_attention(
                lambda q, k, v, _: F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling,
                                                                  is_causal=True),
                query[:, :, start:end], key[:, :, start:end], value[:, :, start:end]))
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


def enable_packed_attention(llm) -> bool:
    """Switch an LLM that runs SDPA through ALL_ATTENTION_FUNCTIONS to `sdpa_packed`; False for other
    LLMs (their own attention keeps the dense block mask) and for other implementations (flash-attn
    packs through position_ids, see model/vlm.py `llm_attention_inputs`)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    config = getattr(llm, 'config', None)
    if getattr(config, '_attn_implementation', None) not in ('sdpa', NAME) or not _uses_interface(llm):
        return False
    ALL_ATTENTION_FUNCTIONS[NAME] = packed_sdpa_forward
    config._attn_implementation = NAME
    for module in llm.modules():
        if hasattr(type(module), '_update_causal_mask') and not hasattr(module, '_mask_decided_as_sdpa'):
            # bound to the module (not a closure over it): a deep copy (a reference model) rebinds to the copy
            module._update_causal_mask = types.MethodType(_update_causal_mask_as_sdpa, module)
            module._mask_decided_as_sdpa = True
    return True


def _update_causal_mask_as_sdpa(module, *args, **kwargs):
    """transformers 4.48 decides the LLM's mask by the implementation's name, and only "sdpa" may skip
    it: a causal batch without padding (or a right-padded training batch, model/vlm.py) then runs SDPA's
    causal kernel. Under any other name it builds and applies a [batch, 1, L, L] float mask every step.
    Deciding under "sdpa" keeps that shortcut; packed rows' block masks pass through as before."""
    config, update = module.config, type(module)._update_causal_mask
    if config._attn_implementation != NAME:  # switched since (e.g. to flash-attn): decided as that
        return update(module, *args, **kwargs)
    config._attn_implementation = 'sdpa'
    try:
        return update(module, *args, **kwargs)
    finally:
        config._attn_implementation = NAME


def _uses_interface(llm) -> bool:
    """Some module's forward looks its kernel up in ALL_ATTENTION_FUNCTIONS, itself or through a helper
    function it calls (transformers' Qwen2, Llama, Phi3; the package's InternLM2 and Qwen3 on Llama,
    via qwen3.rotary_cached_attention). Asked of the code, not of the model's file: a model can run
    another file's attention (Qwen3-MoE runs Qwen3's)."""
    forwards = {type(module).forward for module in llm.modules()}
    return any(_looks_up_interface(forward) for forward in forwards)


def _looks_up_interface(function, depth: int = 2) -> bool:
    code = getattr(function, '__code__', None)
    if code is None:
        return False
    if 'ALL_ATTENTION_FUNCTIONS' in code.co_names:
        return True
    helpers = [function.__globals__.get(name) for name in code.co_names] if depth else []
    return any(_looks_up_interface(helper, depth - 1) for helper in helpers if inspect.isfunction(helper))
