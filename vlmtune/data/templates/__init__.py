"""Conversation template registry: one file per template family, each registering `Template`
definitions (roles, separators, system message, stop tokens, label rule; see base.py)."""
from typing import List

from ...registry import Registry, import_submodules
from .base import Segment, Template

REGISTRY = Registry('template')


def register(template: Template) -> Template:
    REGISTRY.register(template.name)(template)
    return template


def get_template(name) -> Template:
    """A registered name, or a Template given directly."""
    return name if isinstance(name, Template) else REGISTRY.get(name)


def render_segments(template, conversations: List[dict], system_message: str = None) -> List[Segment]:
    return get_template(template).segments(conversations, system_message)


def render_prompt(template, conversations: List[dict], system_message: str = None,
                  add_generation_prompt: bool = False) -> str:
    return get_template(template).render(conversations, system_message, add_generation_prompt)


import_submodules(__name__, __path__)

__all__ = ['REGISTRY', 'Segment', 'Template', 'get_template', 'register', 'render_prompt', 'render_segments']
