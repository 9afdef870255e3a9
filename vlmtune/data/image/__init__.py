"""Image processor registry: one file per strategy (how an image becomes tiles of pixels), plus
`ImageTokens`, the one place that says how many LLM tokens those tiles become."""
from ...registry import Registry, import_submodules
from .tokens import IMAGE_TAG, ImageLayout, ImageTokens, unpadded_shape

REGISTRY = Registry('image processor')
register = REGISTRY.register


def build_image_processor(settings: dict):
    """settings: {'type': name, **fields} -> processor instance. `exif` (the EXIF orientation rule,
    orientation.py) is applied where images are opened, before any processor sees them."""
    fields = dict(settings)
    fields.pop('exif', None)
    return REGISTRY.get(fields.pop('type'))(**fields)


import_submodules(__name__, __path__)

__all__ = ['IMAGE_TAG', 'REGISTRY', 'ImageLayout', 'ImageTokens', 'build_image_processor', 'register', 'unpadded_shape']
