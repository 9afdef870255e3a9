"""The layout registry: every on-disk layout (interfaces.Layout) registers itself here with its NAME
and an ORDER; `layouts()` lists them in that order, which is also the order `detect` asks them in and
the order in which a composition's natural layout is chosen (the first that holds it).

A user's own layout needs no package edit: a module that calls `register_layout(MyLayout())`, imported
by the recipe (`custom_imports`), or a dotted `save_layout='my_layouts.MyLayout'` (imported and
registered on first use).
"""
import inspect

from ..registry import Registry
from .common import CheckpointError

REGISTRY = Registry('layout')


def register_layout(layout):
    """Register a layout (a module or an object with the Layout members) under its NAME."""
    missing = [name for name in ('NAME', 'ORDER', 'detect', 'read_spec', 'read_state', 'load_tokenizer',
                                 'unsupported', 'to_layout', 'from_layout', 'part_of', 'write', 'describe')
               if not hasattr(layout, name)]
    if missing:
        raise TypeError(f'layout {getattr(layout, "NAME", layout)!r} lacks {missing} (see vlmtune.interfaces.Layout)')
    if layout.NAME in REGISTRY and REGISTRY.get(layout.NAME) is layout:
        return layout
    REGISTRY.register(layout.NAME)(layout)
    return layout


def layouts() -> list:
    """The registered layouts, in ORDER."""
    return sorted((REGISTRY.get(name) for name in REGISTRY.names()), key=lambda layout: layout.ORDER)


def layout_named(name):
    """A registered layout by name, or a user's by dotted path (imported and registered)."""
    if not isinstance(name, str) or name in REGISTRY:
        return REGISTRY.get(name) if isinstance(name, str) else register_layout(name)
    if '.' not in name:
        raise CheckpointError(f'unknown layout {name!r}; choose one of {[layout.NAME for layout in layouts()]} '
                              f'(or a dotted path to your own)')
    try:
        found = REGISTRY.get(name)
    except KeyError as exc:
        raise CheckpointError(str(exc.args[0])) from None
    return register_layout(found() if inspect.isclass(found) else found)
