"""Mixtral (what an upcycled Llama exports to): transformers' own class. LoRA on attention and every
expert's w1/w2/w3; the routers (`block_sparse_moe.gate`) are not LoRA targets."""
from . import add
from .entry import ATTENTION, LLMEntry


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'mixtral', 'num_local_experts': spec.llm_experts,
            'intermediate_size': spec.llm_moe_intermediate, 'num_experts_per_tok': spec.llm_experts_per_token,
            'router_jitter_noise': 0.0, 'sliding_window': None, 'router_aux_loss_coef': 0.001}


add(LLMEntry('mixtral', 'MixtralForCausalLM', 'MixtralConfig', 'MixtralForCausalLM',
             default_template='internlm2-chat', tiny_config=tiny_config, lora_targets=ATTENTION + ('w1', 'w2', 'w3')))
