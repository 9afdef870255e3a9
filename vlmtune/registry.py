"""A tiny name -> builder registry; each component folder owns one and imports its files so the
`@register` decorators run. Exact names only: a typo fails loudly with the known names.

A component a user defines outside the package needs no package edit: a dotted `type=`
('my_parts.MyConnector') is imported on first use, or the user's module registers itself under a
short name and the recipe imports it (`custom_imports`).
"""
import importlib
import pkgutil
from typing import Callable, Dict


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, object] = {}

    def register(self, *names: str) -> Callable:
        def decorator(obj):
            for name in names:
                if name in self._entries:
                    raise KeyError(f'{self.kind} {name!r} is registered twice')
                self._entries[name] = obj
            return obj
        return decorator

    def get(self, name):
        if not isinstance(name, str):  # a class given directly (e.g. imported in a recipe)
            return name
        if name in self._entries:
            return self._entries[name]
        if '.' in name:
            module, _, attr = name.rpartition('.')
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise KeyError(f'{self.kind} {name!r}: cannot import it ({exc}); put its module on PYTHONPATH '
                               f'(e.g. next to the recipe, where you run from)') from None
        raise KeyError(f'unknown {self.kind} {name!r}; known: {self.names()} (or a dotted path to your own class)')

    def canonical(self, value) -> str:
        """A `type` as it is saved: a name stays; a class becomes its registered name, else its dotted path."""
        if isinstance(value, str):
            return value
        for name, obj in self._entries.items():
            if obj is value:
                return name
        return f'{value.__module__}.{value.__qualname__}'

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


def import_submodules(package_name: str, package_path) -> None:
    """Import every module of a package not starting with '_' so its registrations run."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith('_'):
            importlib.import_module(f'{package_name}.{info.name}')
