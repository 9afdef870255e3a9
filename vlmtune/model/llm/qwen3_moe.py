"""Qwen3-MoE (transformers >= 4.51) on our Qwen3: the same attention; a decoder layer's FFN is a
sparse block (softmax router `mlp.gate`, top-k experts `mlp.experts.N.{gate,up,down}_proj` of width
`moe_intermediate_size`, renormalised when `norm_topk_prob`) unless the layer is in
`mlp_only_layers` or off the `decoder_sparse_step` grid, where it is a dense FFN of
`intermediate_size`. With `output_router_logits` the output carries transformers' load-balancing
loss (`aux_loss`, Switch Transformer eq. 4-6, computed by transformers' own function); `loss`
adds `router_aux_loss_coef * aux_loss` as transformers does. Inference is dropless.

Self-contained like qwen3.py (shipped in exported folders next to it).
settings: {'config': the Qwen3-MoE config dict}.
"""
import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast
from transformers.models.qwen2_moe.modeling_qwen2_moe import load_balancing_loss_func

from .qwen3 import Qwen3Config, Qwen3DecoderLayer, Qwen3ForCausalLM, Qwen3MLP, Qwen3Model


class Qwen3MoeConfig(Qwen3Config):
    """transformers' Qwen3MoeConfig fields and defaults (head_dim, when given, rides in kwargs)."""
    model_type = 'qwen3_moe'
    keys_to_ignore_at_inference = ['past_key_values']

    def __init__(self, vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
                 num_attention_heads=32, num_key_value_heads=4, hidden_act='silu', max_position_embeddings=32768,
                 initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, tie_word_embeddings=False,
                 rope_theta=10000.0, rope_scaling=None, attention_bias=False, use_sliding_window=False,
                 sliding_window=4096, attention_dropout=0.0, decoder_sparse_step=1, moe_intermediate_size=768,
                 num_experts_per_tok=8, num_experts=128, norm_topk_prob=False, output_router_logits=False,
                 router_aux_loss_coef=0.001, mlp_only_layers=None, **kwargs):
        super().__init__(vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
                             num_key_value_heads, kwargs.pop('head_dim', hidden_size // num_attention_heads),
                             hidden_act, max_position_embeddings, initializer_range, rms_norm_eps, use_cache,
                             tie_word_embeddings, rope_theta, rope_scaling, attention_bias, use_sliding_window,
                             sliding_window, kwargs.pop('max_window_layers', num_hidden_layers), attention_dropout,
                             **kwargs)
        self.decoder_sparse_step, self.moe_intermediate_size = decoder_sparse_step, moe_intermediate_size
        self.num_experts_per_tok, self.num_experts = num_experts_per_tok, num_experts
        self.norm_topk_prob, self.output_router_logits = norm_topk_prob, output_router_logits
        self.router_aux_loss_coef = router_aux_loss_coef
        self.mlp_only_layers = [] if mlp_only_layers is None else mlp_only_layers


def is_sparse_layer(config, layer_idx: int) -> bool:
    return (layer_idx not in config.mlp_only_layers and config.num_experts > 0
            and (layer_idx + 1) % config.decoder_sparse_step == 0)


class Qwen3MoeSparseMoeBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_experts, self.top_k, self.norm_topk_prob = (config.num_experts, config.num_experts_per_tok,
                                                             config.norm_topk_prob)
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList([Qwen3MLP(config, config.moe_intermediate_size)
                                      for _ in range(config.num_experts)])

    def forward(self, hidden_states):
        """-> (output, router logits [tokens, experts])."""
        shape = hidden_states.shape
        tokens = hidden_states.reshape(-1, shape[-1])
        router_logits = self.gate(tokens)
        weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        weights, chosen = torch.topk(weights, self.top_k, dim=-1)
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights.to(tokens.dtype)
        out = torch.zeros_like(tokens)
        for expert in chosen.unique().tolist():  # each expert once, on the tokens routed to it
            token, slot = torch.where(chosen == expert)
            out.index_add_(0, token, self.experts[expert](tokens[token]) * weights[token, slot, None])
        return out.reshape(shape), router_logits


class Qwen3MoeDecoderLayer(Qwen3DecoderLayer):
    def __init__(self, config, layer_idx: int):
        super().__init__(config, layer_idx)
        if is_sparse_layer(config, layer_idx):
            self.mlp = Qwen3MoeSparseMoeBlock(config)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                output_attentions=False, use_cache=False, cache_position=None, position_embeddings=None, **kwargs):
        """-> (hidden states, router logits or None)."""
        residual = hidden_states
        # position_ids reach the attention function: flash-attention's padding-free path cuts packed rows on them
        hidden_states, _ = self.self_attn(self.input_layernorm(hidden_states), position_embeddings, attention_mask,
                                          past_key_value=past_key_value, cache_position=cache_position,
                                          position_ids=position_ids, **kwargs)
        hidden_states = residual + hidden_states
        out = self.mlp(self.post_attention_layernorm(hidden_states))
        out, router_logits = out if isinstance(out, tuple) else (out, None)
        return hidden_states + out, router_logits


class Qwen3MoeModel(Qwen3Model):
    config_class = Qwen3MoeConfig
    layer_class = Qwen3MoeDecoderLayer
    _no_split_modules = ['Qwen3MoeDecoderLayer']

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, output_hidden_states=None, cache_position=None, **kwargs):
        """Llama's loop, keeping each sparse layer's router logits (MoeModelOutputWithPast.router_logits)."""
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        if cache_position is None:
            seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            cache_position = torch.arange(seen, seen + hidden.shape[1], device=hidden.device)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        mask = self._update_causal_mask(attention_mask, hidden, cache_position, past_key_values, False)
        position_embeddings = self.rotary_emb(hidden, position_ids)
        all_hidden, router_logits = [], []
        for layer in self.layers:
            all_hidden.append(hidden)
            args = (hidden, mask, position_ids, past_key_values, False, use_cache, cache_position, position_embeddings)
            if self.gradient_checkpointing and self.training:
                hidden, logits = self._gradient_checkpointing_func(layer.__call__, *args)
            else:
                hidden, logits = layer(*args, **kwargs)
            if logits is not None:
                router_logits.append(logits)
        hidden = self.norm(hidden)
        return MoeModelOutputWithPast(last_hidden_state=hidden, past_key_values=past_key_values if use_cache else None,
                                      hidden_states=tuple(all_hidden + [hidden]) if output_hidden_states else None,
                                      router_logits=tuple(router_logits))


class Qwen3MoeForCausalLM(Qwen3ForCausalLM):
    config_class = Qwen3MoeConfig
    model_class = Qwen3MoeModel
    _no_split_modules = ['Qwen3MoeDecoderLayer']

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                output_router_logits=None, return_dict=None, cache_position=None, num_logits_to_keep=0, **kwargs):
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                             output_hidden_states=output_hidden_states, cache_position=cache_position, **kwargs)
        logits = self.lm_head(outputs.last_hidden_state[:, -num_logits_to_keep:, :])
        loss = aux_loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        if output_router_logits:
            # Padding is left out of the balance only for a [batch, length] mask; packed rows' 4-D block mask
            # has no padding to drop.
            padding = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
            aux_loss = load_balancing_loss_func(outputs.router_logits, self.config.num_experts,
                                                self.config.num_experts_per_tok, padding)
            if loss is not None:
                loss = loss + self.config.router_aux_loss_coef * aux_loss.to(loss.device)
        return MoeCausalLMOutputWithPast(loss=loss, aux_loss=aux_loss, logits=logits,
                                         past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states,
                                         router_logits=outputs.router_logits if output_router_logits else None)


def tiny_config(common: dict, spec) -> dict:
    from .qwen3 import tiny_config as qwen3_tiny_config
    return {**qwen3_tiny_config(common, spec), 'num_experts': spec.llm_experts,
            'num_experts_per_tok': spec.llm_experts_per_token, 'moe_intermediate_size': spec.llm_moe_intermediate,
            'norm_topk_prob': True, 'decoder_sparse_step': 1, 'mlp_only_layers': [], 'output_router_logits': False,
            'router_aux_loss_coef': 0.001}


try:  # the package's registry and entry type; absent when this file ships inside a checkpoint folder
    from . import entry, register  # (not `from .entry`: transformers would look for entry.py in the folder)
except ImportError:
    register = None
if register is not None:
    # Attention and every FFN (dense layers' and each expert's); the router `mlp.gate` stays frozen unless a
    # recipe adds it (a Linear named exactly `gate`, so no other target matches it). Its aux loss leaves a 4-D
    # (packed) mask out, unlike transformers 4.48's MoE classes.
    register('qwen3_moe')(entry.LLMEntry('qwen3_moe', 'Qwen3MoeForCausalLM', Qwen3MoeConfig, Qwen3MoeForCausalLM,
                                   default_template='internvl2_5', tiny_config=tiny_config,
                                   lora_targets=entry.ATTENTION + ('gate_proj', 'up_proj', 'down_proj'),
                                   shipped_files=('qwen3.py', 'qwen3_moe.py'), packed_router_loss=True))
