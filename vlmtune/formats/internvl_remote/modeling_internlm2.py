"""InternLM2 causal language model with the official parameter layout.

Exported folders must carry a self-contained `modeling_internlm2.py` (transformers has no InternLM2).
vlmtune computes with its own InternLM2 (on transformers' Llama); tests prove both give the same
logits on the same weights.

`wqkv` rows are grouped per KV head: for KV head h there are g = heads/kv_heads query heads, then
k_h, then v_h, each head_dim rows.

The cache: old `generate()` (4.37-4.48) passes None and gets back the legacy tuple of (key, value)
per layer; newer ones (4.5x, 5.x) pass a `Cache` object, which is updated in place and returned.
transformers 5 also renamed the argument and output field `past_key_values` to `cache`.
Self-contained: copied verbatim into exported InternLM2-based checkpoint folders.
"""
from typing import Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_internlm2 import InternLM2Config

try:
    from transformers import GenerationMixin
except ImportError:  # pragma: no cover - very old transformers
    from transformers.generation import GenerationMixin
try:  # transformers >= 4.36
    from transformers.cache_utils import Cache
except ImportError:  # pragma: no cover
    Cache = None

# The output field (and generate()'s keyword) holding the cache: `cache` from transformers 5.
CACHE_KEY = 'cache' if 'cache' in getattr(CausalLMOutputWithPast, '__dataclass_fields__', {}) else 'past_key_values'


def is_cache(past) -> bool:
    return Cache is not None and isinstance(past, Cache)


def past_length(past) -> int:
    """Cached positions in a `Cache`, a legacy ((k, v), ...) tuple or None."""
    if is_cache(past):
        return past.get_seq_length()
    return past[0][0].shape[2] if past else 0


class InternLM2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class InternLM2RotaryEmbedding(nn.Module):
    """Rotary embedding; supports `rope_scaling` types `linear` and `dynamic` (NTK)."""

    def __init__(self, dim, max_position_embeddings, base, scaling=None):
        super().__init__()
        self.dim, self.max_position_embeddings, self.base = dim, max_position_embeddings, base
        self.scaling_type = (scaling or {}).get('type') or (scaling or {}).get('rope_type')
        self.scaling_factor = float((scaling or {}).get('factor', 1.0))
        if self.scaling_type not in (None, 'linear', 'dynamic', 'default'):
            raise ValueError(f'unsupported rope_scaling type {self.scaling_type!r}')

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        base = self.base
        seq_len = int(position_ids.max()) + 1
        if self.scaling_type == 'dynamic' and seq_len > self.max_position_embeddings:
            base = base * ((self.scaling_factor * seq_len / self.max_position_embeddings)
                           - (self.scaling_factor - 1)) ** (self.dim / (self.dim - 2))
        inv_freq = 1.0 / (base ** (torch.arange(0, self.dim, 2, device=x.device, dtype=torch.float32) / self.dim))
        positions = position_ids.to(torch.float32)
        if self.scaling_type == 'linear':
            positions = positions / self.scaling_factor
        freqs = positions[..., None] * inv_freq  # [B, L, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class InternLM2MLP(nn.Module):
    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)  # gate
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)  # up
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)  # down
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.w2(self.act_fn(self.w1(x)) * self.w3(x))


class InternLM2Attention(nn.Module):
    def __init__(self, config: InternLM2Config, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.groups = self.num_heads // self.num_kv_heads
        if self.head_dim * self.num_heads != config.hidden_size or self.num_heads % self.num_kv_heads:
            raise ValueError('hidden_size must divide by num_attention_heads, and heads by num_key_value_heads')
        self.wqkv = nn.Linear(config.hidden_size, (self.num_heads + 2 * self.num_kv_heads) * self.head_dim,
                              bias=config.bias)
        self.wo = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.bias)
        self.rotary_emb = InternLM2RotaryEmbedding(self.head_dim, config.max_position_embeddings,
                                                   config.rope_theta, config.rope_scaling)

    def forward(self, hidden_states, attention_bias, position_ids, past_key_value=None, use_cache=False):
        batch, length, _ = hidden_states.shape
        qkv = self.wqkv(hidden_states).view(batch, length, self.num_kv_heads, self.groups + 2, self.head_dim)
        q = qkv[..., :self.groups, :].reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = qkv[..., -2, :].transpose(1, 2)
        v = qkv[..., -1, :].transpose(1, 2)
        cos, sin = self.rotary_emb(v, position_ids)
        q, k = apply_rotary(q, k, cos, sin)
        if is_cache(past_key_value):  # same concatenation, done by the Cache object
            k, v = past_key_value.update(k, v, self.layer_idx)
        elif past_key_value is not None:
            k = torch.cat([past_key_value[0], k], dim=2)
            v = torch.cat([past_key_value[1], v], dim=2)
        present = (k, v) if use_cache else None
        k_all = k.repeat_interleave(self.groups, dim=1)
        v_all = v.repeat_interleave(self.groups, dim=1)
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=attention_bias)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.wo(out), present


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, config: InternLM2Config, layer_idx: int = 0):
        super().__init__()
        self.attention = InternLM2Attention(config, layer_idx)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, attention_bias, position_ids, past_key_value=None, use_cache=False):
        attn, present = self.attention(self.attention_norm(hidden_states), attention_bias, position_ids,
                                       past_key_value, use_cache)
        hidden_states = hidden_states + attn
        hidden_states = hidden_states + self.feed_forward(self.ffn_norm(hidden_states))
        return hidden_states, present


def causal_bias(attention_mask: Optional[torch.Tensor], batch: int, q_len: int, past_len: int,
                dtype: torch.dtype, device) -> torch.Tensor:
    """Additive [B, 1, q_len, past_len+q_len] mask: causal, plus padding from a [B, total] 0/1 mask."""
    total = past_len + q_len
    rows = torch.arange(past_len, total, device=device)[:, None]
    allowed = (torch.arange(total, device=device)[None, :] <= rows)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, -total:].bool()
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
    bias = bias.masked_fill(~allowed, torch.finfo(dtype).min)
    # A finite minimum (not -inf) keeps fully masked left-padding rows finite in softmax.
    return bias.expand(batch, 1, q_len, total)


class InternLM2PreTrainedModel(PreTrainedModel):
    config_class = InternLM2Config
    base_model_prefix = 'model'
    supports_gradient_checkpointing = True
    _no_split_modules = ['InternLM2DecoderLayer']
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)

    def _set_gradient_checkpointing(self, module=None, value=True, **kwargs):
        enable = kwargs.get('enable', value)
        for sub in self.modules():
            if isinstance(sub, InternLM2Model):
                sub.gradient_checkpointing = bool(enable)


class InternLM2Model(InternLM2PreTrainedModel):
    def __init__(self, config: InternLM2Config):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([InternLM2DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_embeddings

    def set_input_embeddings(self, value):
        self.tok_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, cache=None, **kwargs):
        past_key_values = cache if cache is not None else past_key_values
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)
        batch, q_len, _ = inputs_embeds.shape
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        past_len = past_length(past_key_values)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + q_len, device=inputs_embeds.device)[None]
            position_ids = position_ids.expand(batch, q_len)
        if attention_mask is not None and attention_mask.dim() == 4:
            bias = attention_mask.to(inputs_embeds.dtype)  # a ready additive mask (e.g. packed samples)
        else:
            bias = causal_bias(attention_mask, batch, q_len, past_len, inputs_embeds.dtype, inputs_embeds.device)
        hidden_states = inputs_embeds
        all_states = () if output_hidden_states else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_states += (hidden_states,)
            past = past_key_values if is_cache(past_key_values) else (past_key_values[i] if past_key_values else None)
            if self.gradient_checkpointing and self.training:
                hidden_states, present = torch.utils.checkpoint.checkpoint(
                    layer, hidden_states, bias, position_ids, None, False, use_reentrant=False)
            else:
                hidden_states, present = layer(hidden_states, bias, position_ids, past, use_cache)
            if use_cache:
                presents += (present,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_states += (hidden_states,)
        if is_cache(past_key_values):
            presents = past_key_values
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, hidden_states=all_states,
                                       **{CACHE_KEY: presents})


class InternLM2ForCausalLM(InternLM2PreTrainedModel, GenerationMixin):
    # Used only when tie_word_embeddings is set (never in InternVL folders). A dict serves both readers:
    # transformers 4 iterates the tied keys, 5 reads {target: source} (a list breaks it there).
    _tied_weights_keys = {'output.weight': 'model.tok_embeddings.weight'}

    def __init__(self, config: InternLM2Config):
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.vocab_size = config.vocab_size
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.tok_embeddings

    def set_input_embeddings(self, value):
        self.model.tok_embeddings = value

    def get_output_embeddings(self):
        return self.output

    def set_output_embeddings(self, new_embeddings):
        self.output = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, cache=None, **kwargs):
        past_key_values = cache if cache is not None else past_key_values
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                             output_hidden_states=output_hidden_states)
        logits = self.output(outputs.last_hidden_state).float()
        presents = getattr(outputs, CACHE_KEY)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        if return_dict is False:
            return tuple(v for v in (loss, logits, presents) if v is not None)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                      **{CACHE_KEY: presents})

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None,
                                      inputs_embeds=None, cache=None, **kwargs):
        past_key_values = cache if cache is not None else past_key_values
        past_len = past_length(past_key_values)
        if past_len:
            # With inputs_embeds the ids hold only generated tokens; feed the ones not yet cached.
            keep = input_ids.shape[1] - past_len if input_ids.shape[1] > past_len else 1
            input_ids = input_ids[:, -keep:]
        position_ids = kwargs.get('position_ids')
        if attention_mask is not None and position_ids is None:
            position_ids = attention_mask.long().cumsum(-1) - 1
            position_ids.masked_fill_(attention_mask == 0, 1)
        if position_ids is not None:
            position_ids = position_ids[:, -(input_ids.shape[1] if past_len or inputs_embeds is None
                                             else inputs_embeds.shape[1]):]
        if inputs_embeds is not None and not past_len:
            model_inputs = {'inputs_embeds': inputs_embeds}
        else:
            model_inputs = {'input_ids': input_ids}
        model_inputs.update({'position_ids': position_ids, CACHE_KEY: past_key_values,
                             'use_cache': kwargs.get('use_cache'), 'attention_mask': attention_mask})
        return model_inputs

    @staticmethod
    def _reorder_cache(past_key_values, beam_idx):
        return tuple(tuple(p.index_select(0, beam_idx.to(p.device)) for p in layer) for layer in past_key_values)
