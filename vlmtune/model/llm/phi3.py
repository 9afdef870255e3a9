"""Phi-3 (InternVL2-4B, Mini-InternVL): transformers' own class, with its fused qkv and gate_up projections.
LMDeploy's TurboMind has no Phi-3 kernel; its PyTorch engine serves it."""
from . import add
from .entry import LLMEntry


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'phi3', 'original_max_position_embeddings': 4096, 'sliding_window': None}


add(LLMEntry('phi3', 'Phi3ForCausalLM', 'Phi3Config', 'Phi3ForCausalLM', default_template='phi3-chat',
             tiny_config=tiny_config,
             lora_targets=('self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'),
             engines=('vllm', 'lmdeploy-pytorch')))
