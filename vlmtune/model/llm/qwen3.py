"""Qwen3 (transformers >= 4.51; our pin 4.48 lacks it) on transformers' Llama: the same decoder
(RMSNorm, SwiGLU, rotary, GQA) plus an RMSNorm over each query and key head before rotary, no qkv
bias, and an explicit `head_dim` (it need not be hidden_size / heads). Parameter names and config
fields are transformers' own (`self_attn.q_norm`, `mlp.gate_proj`, ...), so its Qwen3 folders load as
they are. Caches, SDPA / flash-attention, packed attention and gradient checkpointing come from Llama.

Self-contained (torch + transformers 4.48 only): the `internvl` layout ships this file in exported
folders, whose remote code uses it when the installed transformers has no Qwen3 of its own.
settings: {'config': the Qwen3 config dict}.
"""
from torch import nn
from transformers import PretrainedConfig
from transformers.activations import ACT2FN
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaModel,
                                                      LlamaPreTrainedModel, LlamaRMSNorm, LlamaRotaryEmbedding,
                                                      apply_rotary_pos_emb, eager_attention_forward)


class Qwen3Config(PretrainedConfig):
    """transformers' Qwen3Config fields and defaults."""
    model_type = 'qwen3'
    keys_to_ignore_at_inference = ['past_key_values']

    def __init__(self, vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, head_dim=128, hidden_act='silu',
                 max_position_embeddings=32768, initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
                 tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
                 use_sliding_window=False, sliding_window=4096, max_window_layers=28, attention_dropout=0.0,
                 **kwargs):
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.head_dim, self.hidden_act, self.max_position_embeddings = head_dim, hidden_act, max_position_embeddings
        self.initializer_range, self.rms_norm_eps, self.use_cache = initializer_range, rms_norm_eps, use_cache
        self.rope_theta, self.rope_scaling = rope_theta, rope_scaling
        if rope_scaling is not None and 'type' in rope_scaling:
            self.rope_scaling['rope_type'] = rope_scaling['type']
        self.attention_bias, self.attention_dropout = attention_bias, attention_dropout
        self.use_sliding_window, self.max_window_layers = use_sliding_window, max_window_layers
        self.sliding_window = sliding_window if use_sliding_window else None
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


def check_supported(config):
    if getattr(config, 'use_sliding_window', False):
        raise ValueError('Qwen3 with use_sliding_window=True is not supported (no released Qwen3 / InternVL3.5 '
                         'uses it); set use_sliding_window to false in the LLM config')


class Qwen3MLP(nn.Module):
    def __init__(self, config, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class Qwen3Attention(LlamaAttention):
    def __init__(self, config, layer_idx: int):
        super().__init__(config, layer_idx)  # q/k/v/o with head_dim and attention_bias from the config
        self.q_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)  # per head, over head_dim only
        self.k_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_value=None, cache_position=None,
                **kwargs):
        shape = (*hidden_states.shape[:-1], -1, self.head_dim)
        query = self.q_norm(self.q_proj(hidden_states).view(shape)).transpose(1, 2)
        key = self.k_norm(self.k_proj(hidden_states).view(shape)).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        out, weights = rotary_cached_attention(self, query, key, value, position_embeddings, attention_mask,
                                               past_key_value, cache_position, **kwargs)
        return self.o_proj(out.reshape(*hidden_states.shape[:-1], -1).contiguous()), weights


def rotary_cached_attention(module, query, key, value, position_embeddings, attention_mask, past_key_value,
                            cache_position, **kwargs):
    """Llama's attention after the projections: rotary on q/k, the KV cache, then the configured
    attention function (eager, sdpa, flash-attention, sdpa_packed). q/k/v: [batch, heads, length, dim]."""
    cos, sin = position_embeddings
    query, key = apply_rotary_pos_emb(query, key, cos, sin)
    if past_key_value is not None:
        key, value = past_key_value.update(key, value, module.layer_idx,
                                           {'sin': sin, 'cos': cos, 'cache_position': cache_position})
    implementation = module.config._attn_implementation
    attention = eager_attention_forward if implementation == 'eager' else ALL_ATTENTION_FUNCTIONS[implementation]
    return attention(module, query, key, value, attention_mask, scaling=module.scaling,
                     dropout=module.attention_dropout if module.training else 0.0, **kwargs)


class Qwen3DecoderLayer(LlamaDecoderLayer):
    def __init__(self, config, layer_idx: int):
        nn.Module.__init__(self)
        self.hidden_size = config.hidden_size
        self.self_attn = Qwen3Attention(config, layer_idx)
        self.mlp = Qwen3MLP(config, config.intermediate_size)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class Qwen3PreTrainedModel(LlamaPreTrainedModel):
    config_class = Qwen3Config
    _no_split_modules = ['Qwen3DecoderLayer']


class Qwen3Model(Qwen3PreTrainedModel, LlamaModel):
    layer_class = Qwen3DecoderLayer

    def __init__(self, config):
        check_supported(config)
        Qwen3PreTrainedModel.__init__(self, config)
        self.padding_idx, self.vocab_size = config.pad_token_id, config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([self.layer_class(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()


class Qwen3ForCausalLM(Qwen3PreTrainedModel, LlamaForCausalLM):
    model_class = Qwen3Model

    def __init__(self, config):
        Qwen3PreTrainedModel.__init__(self, config)
        self.model = self.model_class(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


def tiny_config(common: dict, spec) -> dict:
    """InternVL3.5's LLMs, with the released models' fixed fields (head_dim >= 32, as real engines need)."""
    return {**common, 'model_type': spec.llm, 'head_dim': spec.llm_head_dim, 'rope_theta': 1000000.0,
            'attention_bias': False, 'use_sliding_window': False, 'sliding_window': None,
            'max_window_layers': spec.llm_layers, 'hidden_act': 'silu', 'attention_dropout': 0.0, 'use_cache': True}


try:  # the package's registry and entry type; absent when this file ships inside a checkpoint folder
    from . import entry, register  # (not `from .entry`: transformers would look for entry.py in the folder)
except ImportError:
    register = None
if register is not None:  # shipped by remote-code folders for transformers older than 4.51
    register('qwen3')(entry.LLMEntry('qwen3', 'Qwen3ForCausalLM', Qwen3Config, Qwen3ForCausalLM, default_template='internvl2_5',
                               tiny_config=tiny_config, native_moe='qwen3_moe', shipped_files=('qwen3.py',)))
