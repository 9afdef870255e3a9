"""StableLM-2 (TinyLLaVA Factory's StableLM-2-1.6B / Zephyr): transformers' own class. Partial rotary (the
first quarter of each head), biases on q/k/v only, LayerNorm, sequential residuals, untied head. Its attention
classes are picked when it is built (no ALL_ATTENTION_FUNCTIONS in transformers 4.48), so packed rows keep the
dense block mask. No BOS; `<|endoftext|>` ends each answer: TinyLLaVA trains it with the `phi` template."""
from . import add
from .entry import LLMEntry


def tiny_config(common: dict, spec) -> dict:
    """StableLM-2-1.6B's structure: MHA, q/k/v biases, a quarter of each head rotated."""
    return {**common, 'model_type': 'stablelm', 'num_key_value_heads': spec.llm_heads, 'partial_rotary_factor': 0.25,
            'use_qkv_bias': True, 'qk_layernorm': False, 'use_parallel_residual': False, 'layer_norm_eps': 1e-5,
            'hidden_act': 'silu', 'hidden_dropout': 0.0, 'attention_dropout': 0.0, 'tie_word_embeddings': False}


add(LLMEntry('stablelm', 'StableLmForCausalLM', 'StableLmConfig', 'StableLmForCausalLM', default_template='phi',
             tiny_config=tiny_config, engines=('vllm',)))
