"""LLM registry: one file per source, each registering a family entry (name, architecture, LoRA
targets, how to build it). The LLM family is decided here once; every other place asks `family_of`."""
from ...registry import Registry, import_submodules

REGISTRY = Registry('llm')
register = REGISTRY.register


def family_of(architecture: str) -> str:
    """'Qwen2ForCausalLM' -> 'qwen2'; unknown architectures fail with the supported ones."""
    for name in REGISTRY.names():
        if REGISTRY.get(name).architecture == architecture:
            return name
    supported = sorted(REGISTRY.get(n).architecture for n in REGISTRY.names())
    raise ValueError(f'LLM architecture {architecture!r} is not supported; supported: {supported}')


import_submodules(__name__, __path__)
