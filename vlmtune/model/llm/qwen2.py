"""Qwen2 (InternVL2-1B, InternVL2.5 / 3; TinyLLaVA's and LLaVA's Qwen2 variants): transformers' own class."""
from . import add
from .entry import LLMEntry


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'qwen2', 'use_sliding_window': False, 'sliding_window': 4096}


add(LLMEntry('qwen2', 'Qwen2ForCausalLM', 'Qwen2Config', 'Qwen2ForCausalLM', default_template='internvl2_5',
             tiny_config=tiny_config, native_moe='qwen2_moe'))
