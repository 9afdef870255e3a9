"""Tiny compositions of any registered parts (the contract tests build every part this way): each part from
its own tiny settings (a tower's, connector's or image processor's `tiny_settings`; an LLM entry's
`tiny_config`), a tokenizer of the kind the LLM entry says with the template's tokens, random weights.

    model, tokenizer = compose_tiny(vision_tower='siglip', connector='resampler', llm='gemma',
                                    image_processor='square', template='vicuna_v1')
"""
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import torch

from ..data.image import REGISTRY as IMAGE_PROCESSORS
from ..data.templates import REGISTRY as TEMPLATES
from ..model.connector import REGISTRY as CONNECTORS
from ..model.llm import REGISTRY as LLMS
from ..model.spec import ModelSpec
from ..model.vision_tower import REGISTRY as VISION_TOWERS
from ..model.vlm import VisionLanguageModel
from .internvl import TinySpec, _detach_from_dir, build_tokenizer, llm_config_dict


class NoTinySettings(TypeError):
    """A registered part that cannot say how it is built tiny."""


def tiny_settings(registry, name: str, *args) -> dict:
    cls = registry.get(name)
    if not hasattr(cls, 'tiny_settings'):
        raise NoTinySettings(f'{registry.kind} {name!r} has no tiny_settings(): every registered part says how it '
                             f'is built tiny (vlmtune/interfaces.py)')
    return dict(cls.tiny_settings(*args))


@lru_cache(maxsize=64)
def tiny_tokenizer(family: str, template: str, vocab_size: int = 400):
    """A trained tiny tokenizer per (LLM family's tokenizer kind, template); cached: training takes a second."""
    spec = TinySpec(llm=family, vocab_size=vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        return _detach_from_dir(build_tokenizer(spec, template, Path(tmp)), Path(tmp))


def part(registry, value, *args) -> dict:
    """A part as its spec dict: a registered name built from its tiny settings, or (name, overrides)."""
    name, overrides = (value, {}) if isinstance(value, str) else value
    if registry is TEMPLATES:
        return {'type': name, **TEMPLATES.get(name).tiny_settings(), **overrides}
    return {'type': name, **tiny_settings(registry, name, *args), **overrides}


def compose_tiny(vision_tower='intern_vit', connector='pixel_shuffle_mlp', llm='qwen2', image_processor='internvl_dynamic',
                 template=None, seed=0, shape: TinySpec = None):
    """-> (VisionLanguageModel with random fp32 weights, tokenizer). Each part a registered name or (name, settings
    over its tiny ones); the LLM's widths from `shape` (TinySpec; its llm field is set to `llm`); the template by
    default the LLM entry's."""
    shape = replace(shape or TinySpec(), llm=llm)
    template = part(TEMPLATES, template or LLMS.get(llm).default_template)
    tokenizer = tiny_tokenizer(llm, template['type'], shape.vocab_size)
    processor = part(IMAGE_PROCESSORS, image_processor)
    tower, connector = part(VISION_TOWERS, vision_tower, processor['image_size']), part(CONNECTORS, connector)
    if getattr(CONNECTORS.get(connector['type']), 'SAME_WIDTH', False):  # the connector passes features through
        shape = replace(shape, llm_width=VISION_TOWERS.get(tower['type'])(**{k: v for k, v in tower.items()
                                                                          if k != 'type'}).width)
    spec = ModelSpec(vision_tower=tower, connector=connector, llm={'type': llm, 'config': llm_config_dict(shape, tokenizer)},
                     image_processor=processor, template=template)
    torch.manual_seed(seed)
    model = VisionLanguageModel(spec).float().eval()
    model.set_tokenizer(tokenizer)
    return model, tokenizer
