"""InternLM2 (not in transformers 4.48) on transformers' Llama: the same decoder (RMSNorm, SwiGLU,
rotary, GQA) with one fused `wqkv` projection whose rows are grouped per KV head (for KV head h: its
g = heads / kv_heads query heads, then k_h, then v_h; format doc §3). Keeping the fused layout keeps
the official LoRA target (one LoRA on wqkv, not three). Caches, SDPA / flash-attention, packed
attention and gradient checkpointing come from Llama.

Package parameter names are Llama's plus `self_attn.wqkv`; the official InternLM2 names
(`attention.wqkv`, `feed_forward.w1`, `output`, ...) are the entry's key map (internlm2_keys.py).
transformers has no InternLM2 class: its `-hf` form is a Llama (`hf_text_type`), wqkv split into q/k/v.
settings: {'config': the InternLM2 config dict (official field names)}.
"""
from torch import nn
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import (LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP,
                                                      LlamaModel, LlamaPreTrainedModel, LlamaRMSNorm,
                                                      LlamaRotaryEmbedding)

from . import add
from .entry import KeyMap, LLMEntry
from .internlm2_keys import from_official, to_official
from .qwen3 import rotary_cached_attention

LLAMA_FIELDS = ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
                'num_key_value_heads', 'hidden_act', 'max_position_embeddings', 'initializer_range', 'rms_norm_eps',
                'use_cache', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'rope_theta', 'rope_scaling')


def llama_config(internlm2: dict) -> LlamaConfig:
    fields = {k: internlm2[k] for k in LLAMA_FIELDS if k in internlm2}
    fields.setdefault('num_key_value_heads', fields.get('num_attention_heads'))
    return LlamaConfig(**fields, attention_bias=bool(internlm2.get('bias', True)), mlp_bias=False,
                       tie_word_embeddings=False)


class InternLM2Attention(LlamaAttention):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        nn.Module.__init__(self)  # Llama's q/k/v projections are replaced by one fused wqkv
        self.config, self.layer_idx = config, layer_idx
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        if self.head_dim * self.heads != config.hidden_size or self.heads % self.kv_heads:
            raise ValueError('hidden_size must divide by num_attention_heads, and heads by num_key_value_heads')
        self.num_key_value_groups = self.heads // self.kv_heads
        self.scaling = self.head_dim ** -0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        self.wqkv = nn.Linear(config.hidden_size, (self.heads + 2 * self.kv_heads) * self.head_dim,
                              bias=config.attention_bias)
        self.o_proj = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=config.attention_bias)

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_value=None, cache_position=None,
                **kwargs):
        batch, length, _ = hidden_states.shape
        groups = self.num_key_value_groups
        qkv = self.wqkv(hidden_states).view(batch, length, self.kv_heads, groups + 2, self.head_dim)
        query = qkv[..., :groups, :].reshape(batch, length, self.heads, self.head_dim).transpose(1, 2)
        key, value = qkv[..., -2, :].transpose(1, 2), qkv[..., -1, :].transpose(1, 2)
        out, weights = rotary_cached_attention(self, query, key, value, position_embeddings, attention_mask,
                                               past_key_value, cache_position, **kwargs)
        return self.o_proj(out.reshape(batch, length, -1).contiguous()), weights


class InternLM2DecoderLayer(LlamaDecoderLayer):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        nn.Module.__init__(self)
        self.hidden_size = config.hidden_size
        self.self_attn = InternLM2Attention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class _OfficialInit:
    # The official InternLM2 init draws N(0, std) for every Linear and Embedding and, unlike Llama's,
    # leaves the padding row random: keep it, so a seeded tiny model equals the remote code's.
    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if getattr(module, 'bias', None) is not None:
                module.bias.data.zero_()


class InternLM2Model(_OfficialInit, LlamaModel):
    def __init__(self, config: LlamaConfig):
        LlamaPreTrainedModel.__init__(self, config)
        self.padding_idx, self.vocab_size = config.pad_token_id, config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([InternLM2DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()


class InternLM2ForCausalLM(_OfficialInit, LlamaForCausalLM):
    def __init__(self, config: LlamaConfig):
        LlamaPreTrainedModel.__init__(self, config)
        self.model = InternLM2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'internlm2', 'bias': False}


add(LLMEntry('internlm2', 'InternLM2ForCausalLM', LlamaConfig, InternLM2ForCausalLM,
             default_template='internlm2-chat', tiny_config=tiny_config,
             lora_targets=('self_attn.wqkv', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'),
             key_map=KeyMap(to_release=to_official, from_release=from_official), hf_text_type='llama',
             tiny_tokenizer='sentencepiece', make_config=llama_config, released_model_type='internlm2'))
