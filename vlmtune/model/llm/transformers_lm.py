"""LLMs that transformers implements natively (Qwen2, Llama, Phi3)."""
import transformers

from . import register

# LoRA targets per backbone, matching the official InternVL finetune scripts' module names.
LORA_TARGETS = {
    'Qwen2ForCausalLM': ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
                         'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'],
    'Phi3ForCausalLM': ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'],
}
LORA_TARGETS['LlamaForCausalLM'] = LORA_TARGETS['Qwen2ForCausalLM']


class TransformersLM:
    def __init__(self, architecture: str):
        self.architecture = architecture
        self.lora_targets = LORA_TARGETS[architecture]

    def build(self, config):
        return getattr(transformers, self.architecture)(config)


for _arch in LORA_TARGETS:
    register(_arch)(TransformersLM(_arch))
