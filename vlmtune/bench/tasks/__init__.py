"""benchmark registry: one file per benchmark layout, each registering itself here."""
from ...registry import Registry, import_submodules

REGISTRY = Registry('benchmark')
register = REGISTRY.register
import_submodules(__name__, __path__)
