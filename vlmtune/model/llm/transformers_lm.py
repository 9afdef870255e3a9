"""LLMs that transformers 4.48 implements natively (Qwen2, Llama, Phi3, Qwen2-MoE, Mixtral): its own classes, parameter
names and semantics. settings: {'config': the HF config dict}."""
import transformers

from . import register

ATTENTION = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj']
ATTENTION_MLP = ATTENTION + ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']


class TransformersLM:
    """A family entry: builds the transformers class from the settings' config dict."""

    def __init__(self, family: str, architecture: str, config_class: str, lora_targets):
        self.family, self.architecture, self.lora_targets = family, architecture, lora_targets
        self.config_class = config_class

    def config(self, settings: dict):
        return getattr(transformers, self.config_class)(**settings['config'])

    def build(self, settings: dict, attn_implementation: str = 'sdpa'):
        config = self.config(settings)
        config._attn_implementation = attn_implementation
        return getattr(transformers, self.architecture)(config)

    @staticmethod
    def blocks(model):
        return list(model.model.layers)


for _family, _arch, _config, _targets in [
        ('qwen2', 'Qwen2ForCausalLM', 'Qwen2Config', ATTENTION_MLP),
        ('llama', 'LlamaForCausalLM', 'LlamaConfig', ATTENTION_MLP),
        ('phi3', 'Phi3ForCausalLM', 'Phi3Config', ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj',
                                                    'mlp.down_proj']),
        # Native MoE LLMs (what upcycled Qwen2 / Llama export to): attention and every expert's FFN;
        # the routers (`mlp.gate`, `block_sparse_moe.gate`) are not LoRA targets.
        ('qwen2_moe', 'Qwen2MoeForCausalLM', 'Qwen2MoeConfig', ATTENTION + ['gate_proj', 'up_proj', 'down_proj']),
        ('mixtral', 'MixtralForCausalLM', 'MixtralConfig', ATTENTION + ['w1', 'w2', 'w3'])]:
    register(_family)(TransformersLM(_family, _arch, _config, _targets))
