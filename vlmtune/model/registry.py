"""A tiny name -> builder registry; each component folder owns one and imports its files so the
`@register` decorators run. Exact names only: a typo fails loudly with the known names."""
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

    def get(self, name: str):
        if name not in self._entries:
            raise KeyError(f'unknown {self.kind} {name!r}; known: {sorted(self._entries)}')
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


def import_submodules(package_name: str, package_path) -> None:
    """Import every module of a package not starting with '_' so its registrations run."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith('_'):
            importlib.import_module(f'{package_name}.{info.name}')
