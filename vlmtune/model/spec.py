"""The composition a recipe states: vision tower, connector, LLM, image processor and template, each
`{'type': name-or-dotted-path, **settings}`. A layout adapter (vlmtune/formats) reads it from a
checkpoint folder; `formats.part_folders` reads `pretrained=` folders when a model is built from parts.

The spec answers the questions the rest of the package must not answer on its own: how many tokens
an image becomes (`image_tokens`, from the tower's patch grid and the connector's tokens out), which
template and system message apply, which LLM family this is, and what the data path needs
(`data_spec`).
"""
import copy
from dataclasses import dataclass, field
from typing import Optional

from ..data.data_spec import DataSpec
from ..data.image import REGISTRY as IMAGE_PROCESSORS
from ..data.image import ImageTokens, build_image_processor
from ..data.templates import REGISTRY as TEMPLATES
from ..data.templates import Template
from .connector import REGISTRY as CONNECTORS
from .llm import REGISTRY as LLMS
from .vision_tower import REGISTRY as VISION_TOWERS

COMPONENTS = {'vision_tower': VISION_TOWERS, 'connector': CONNECTORS, 'llm': LLMS,
              'image_processor': IMAGE_PROCESSORS, 'template': TEMPLATES}


class SpecError(ValueError):
    """A model spec (recipe `model.spec` or a folder's) is incomplete or inconsistent."""


@dataclass
class ModelSpec:
    vision_tower: dict
    connector: dict
    llm: dict
    image_processor: dict
    template: dict
    extras: dict = field(default_factory=dict)  # layout fields carried through unchanged, by layout name

    def __post_init__(self):
        for name, registry in COMPONENTS.items():
            settings = getattr(self, name)
            if not isinstance(settings, dict) or 'type' not in settings:
                raise SpecError(f'model spec: {name} needs a dict with a type=, got {settings!r}')
            setattr(self, name, {**settings, 'type': registry.canonical(settings['type'])})

    # --- (de)serialisation and recipe overrides -----------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> 'ModelSpec':
        missing = [name for name in COMPONENTS if name not in data]
        if missing:
            raise SpecError(f'model spec: missing {missing}; a spec names {list(COMPONENTS)}')
        return cls(**{name: dict(data[name]) for name in COMPONENTS}, extras=copy.deepcopy(data.get('extras', {})))

    def to_dict(self) -> dict:
        return copy.deepcopy({**{name: getattr(self, name) for name in COMPONENTS}, 'extras': self.extras})

    def override(self, overrides: Optional[dict]) -> 'ModelSpec':
        """Recipe settings on top of a folder's: keys replace per component (a `config` dict merges key by
        key); a component given with another `type` is replaced whole."""
        data = self.to_dict()
        for name, settings in (overrides or {}).items():
            if name not in COMPONENTS:
                raise SpecError(f'model spec override {name!r}: not a component; use one of {list(COMPONENTS)}')
            settings = dict(settings)
            if 'type' in settings and COMPONENTS[name].canonical(settings['type']) != data[name]['type']:
                data[name] = settings
                continue
            merged = {**data[name], **settings}
            if isinstance(settings.get('config'), dict) and isinstance(data[name].get('config'), dict):
                merged['config'] = {**data[name]['config'], **settings['config']}
            data[name] = merged
        return ModelSpec.from_dict(data)

    # --- components ---------------------------------------------------------------------------
    def component(self, name: str):
        """The registered class (or LLM entry) a component names."""
        return COMPONENTS[name].get(getattr(self, name)['type'])

    def settings(self, name: str) -> dict:
        """A component's settings without its type (and without `pretrained`, used only to resolve them)."""
        return {k: v for k, v in getattr(self, name).items() if k not in ('type', 'pretrained')}

    @property
    def family(self) -> str:
        return self.component('llm').family

    def llm_config(self):
        """The LLM's transformers config object (hidden size, vocabulary, ...)."""
        return self.component('llm').config(self.settings('llm'))

    def build_image_processor(self):
        return build_image_processor(self.image_processor)

    @property
    def exif_rule(self) -> str:
        """How EXIF orientation is treated (data/image/orientation.py): 'ignore' unless set."""
        return self.image_processor.get('exif', 'ignore')

    def build_template(self) -> Template:
        return self.component('template').configure(self.settings('template'))

    @property
    def system_message(self) -> Optional[str]:
        """The configured system message; None means the template's default."""
        return self.template.get('system_message')

    def image_tokens(self) -> ImageTokens:
        """What images become for the LLM: tokens per tile from the tower's patch grid at the processor's
        tile size (plus a CLS token where the tower keeps it) through the connector; the template's image
        token strings; the processor's merge (with the connector's token grid per tile)."""
        tower, connector, processor = self.component('vision_tower'), self.component('connector'), \
            self.build_image_processor()
        grid = tower.patch_grid(self.vision_tower, processor.image_size)
        extra = tower.extra_tokens(self.vision_tower) if hasattr(tower, 'extra_tokens') else 0
        per_tile = connector.tokens_out(self.connector, grid, **({'extra_tokens': extra} if extra else {}))
        merge = processor.merge
        if merge != 'flat' and not hasattr(connector, 'grid_out'):
            raise SpecError(f'the {merge} image merge needs each tile\'s tokens as a grid; the {self.connector["type"]} '
                            f'connector gives no grid (its tokens are not laid out by position)')
        tile_grid = connector.grid_out(self.connector, grid) if merge != 'flat' else None
        if tile_grid is not None and per_tile != tile_grid[0] * tile_grid[1]:
            raise SpecError(f'the {merge} image merge lays each tile\'s tokens out as a {tile_grid[0]}x{tile_grid[1]} '
                            f'grid, but {self.vision_tower["type"]} + {self.connector["type"]} give {per_tile} tokens per '
                            f'tile; use a tower read-out without extra tokens (select_feature) or a flat processor')
        start, context, end = self.build_template().image_tokens
        return ImageTokens(per_tile=per_tile, start=start, context=context, end=end, merge=merge, tile_grid=tile_grid)

    def data_spec(self, tokenizer, max_length: int = 4096, jpeg_augment: bool = False,
                  uint8_pixels: bool = False) -> DataSpec:
        return DataSpec(tokenizer, self.build_template(), self.build_image_processor(), self.image_tokens(),
                        max_length, self.system_message, jpeg_augment, self.exif_rule, uint8_pixels)
