"""LLM registry: one file per family, each adding an `LLMEntry` (entry.py) that carries the family's
facts. The family of a folder is decided here once; every other place asks `family_of` or the entry."""
from ...registry import Registry, import_submodules
from .entry import LLMEntry

REGISTRY = Registry('llm')
register = REGISTRY.register  # by name: the files shipped into checkpoint folders use this form


def add(entry: LLMEntry) -> LLMEntry:
    """Register a family entry under its name."""
    REGISTRY.register(entry.family)(entry)
    return entry


def entries() -> list:
    return [REGISTRY.get(name) for name in REGISTRY.names()]


def family_of(architecture: str) -> str:
    """'Qwen2ForCausalLM' -> 'qwen2'; unknown architectures fail with the supported ones."""
    for entry in entries():
        if entry.architecture == architecture:
            return entry.family
    supported = sorted(entry.architecture for entry in entries())
    raise ValueError(f'LLM architecture {architecture!r} is not supported; supported: {supported}')


import_submodules(__name__, __path__)
