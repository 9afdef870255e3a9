"""vision tower registry: one file per component, each registering itself here."""
from ...registry import Registry, import_submodules

REGISTRY = Registry('vision tower')
register = REGISTRY.register
import_submodules(__name__, __path__)
