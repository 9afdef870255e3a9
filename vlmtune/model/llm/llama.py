"""Llama (Vicuna for LLaVA-1.5, TinyLlama, InternVL2-Llama3-76B): transformers' own class. InternVL's
Llama release uses the internlm2-chat template (its fine-tuning script), which is the default here."""
from . import add
from .entry import LLMEntry


def tiny_config(common: dict, spec) -> dict:
    return {**common, 'model_type': 'llama'}


add(LLMEntry('llama', 'LlamaForCausalLM', 'LlamaConfig', 'LlamaForCausalLM', default_template='internlm2-chat',
             tiny_config=tiny_config, native_moe='mixtral'))
