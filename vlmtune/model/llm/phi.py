"""Phi-2 (TinyLLaVA Factory's TinyLLaVA-Phi-2): transformers' own class with the head the release has. Phi-2's
lm_head carries a bias (its checkpoints hold `lm_head.bias`); transformers 4.48.0, pinned here, builds it
without one and silently drops the bias at load (transformers issue 35625, fixed in 4.48.1): this entry
builds the biased head, and the parity tests compare against transformers 4.57 (oracle_env). Owners' tools
on exactly 4.48.0 compute a Phi-2 without its head bias, and transformers' Llava (>= 4.52: an lm_head of its own)
has none at all: llava-hf folders hold it as 4.48.1 to 4.51 write and run them, and saying so (head_bias). Partial rotary (the first 40% of each head), one
LayerNorm feeding attention and MLP in parallel, MHA, untied head; no BOS, `<|endoftext|>` ends each answer
(TinyLLaVA's `phi` template, pad = eos). The release trains with resid_pdrop 0.1 (read from its config)."""
import transformers
from torch import nn

from . import add
from .entry import LLMEntry


class PhiForCausalLM(transformers.PhiForCausalLM):
    """transformers' class with Phi-2's biased head (named as the release's architecture: save_pretrained
    writes the class name into config.json)."""

    def __init__(self, config):
        super().__init__(config)
        if self.lm_head.bias is None:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
            self._init_weights(self.lm_head)


def tiny_config(common: dict, spec) -> dict:
    """Phi-2's structure; dropout off so tiny-model tests are deterministic."""
    return {**common, 'model_type': 'phi', 'num_key_value_heads': spec.llm_heads, 'partial_rotary_factor': 0.4,
            'qk_layernorm': False, 'layer_norm_eps': 1e-5, 'hidden_act': 'gelu_new', 'resid_pdrop': 0.0,
            'embd_pdrop': 0.0, 'attention_dropout': 0.0, 'tie_word_embeddings': False}


# engines: none, as no layout `vlmtune serve` starts an engine on holds Phi-2 (llava_hf's head has no bias).
add(LLMEntry('phi', 'PhiForCausalLM', 'PhiConfig', f'{__name__}.PhiForCausalLM', default_template='phi',
             tiny_config=tiny_config, head_bias=True, oracle_env='tf-4.57', engines=(),
             lora_targets=('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.dense',
                           'mlp.fc1', 'mlp.fc2')))
