"""Qwen2-MoE (what an upcycled Qwen2 exports to): transformers' own class. LoRA on attention and every
expert's FFN; the routers (`mlp.gate`) and the shared expert's gate are not LoRA targets."""
from . import add
from .entry import ATTENTION, LLMEntry


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'qwen2_moe', 'use_sliding_window': False, 'sliding_window': 4096,
            'num_experts': spec.llm_experts, 'num_experts_per_tok': spec.llm_experts_per_token,
            'moe_intermediate_size': spec.llm_moe_intermediate,
            'shared_expert_intermediate_size': spec.llm_moe_intermediate, 'norm_topk_prob': True,
            'decoder_sparse_step': 1, 'mlp_only_layers': [], 'router_aux_loss_coef': 0.001}


add(LLMEntry('qwen2_moe', 'Qwen2MoeForCausalLM', 'Qwen2MoeConfig', 'Qwen2MoeForCausalLM',
             default_template='internvl2_5', tiny_config=tiny_config,
             lora_targets=ATTENTION + ('gate_proj', 'up_proj', 'down_proj')))
