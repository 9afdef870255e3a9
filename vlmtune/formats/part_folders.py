"""Part folders: a vision tower and an LLM released on their own, as a recipe names them
(`pretrained=`), read into a spec, weights and a tokenizer for model/from_parts.py; and the part
folders the tiny factory writes.

    parts = dict(vision_tower=dict(type='intern_vit', pretrained='models/InternViT-300M-448px'),
                 connector=dict(type='pixel_shuffle_mlp'),
                 llm=dict(type='qwen2', pretrained='models/Qwen2-0.5B-Instruct'),
                 template=dict(type='internvl2_5'))      # image_processor defaults to the tower's size

The LLM folder's tokenizer gets the family's image tokens (added as special tokens after its own, as
the official finetune script does); the vocabulary grows to hold them.
"""
from pathlib import Path

import torch

from ..data.templates import get_template
from ..model.llm import REGISTRY as LLMS
from ..model.llm import family_of
from ..model.spec import ModelSpec, SpecError
from ..model.vision_tower import REGISTRY as VISION_TOWERS
from ..model.vlm import VisionLanguageModel
from .common import CheckpointError, read_json, read_state_dict, read_training_checkpoint, write_json, write_weights
from .tokenizers import add_image_tokens, load_tokenizer

DEFAULT_CONNECTOR = {'type': 'pixel_shuffle_mlp'}  # its own defaults: downsample 0.5, pixel shuffle v2


def _folder(settings: dict, what: str) -> Path:
    folder = Path(settings['pretrained'])
    if not (folder / 'config.json').exists():
        raise CheckpointError(f'{folder / "config.json"}: missing ({what} folder named by pretrained=)')
    return folder


def _tower_config(settings: dict) -> dict:
    """A vision-tower folder's config.json. A tower class may say how its releases are laid out
    (`folder_config(config)` / `folder_state(state)`, e.g. a whole CLIP model that holds the vision
    part); by default the folder is the tower's own config + safetensors."""
    config, cls = read_json(_folder(settings, 'vision tower') / 'config.json'), VISION_TOWERS.get(settings['type'])
    return cls.folder_config(config) if hasattr(cls, 'folder_config') else config


def tower_state(settings: dict) -> dict:
    state, cls = read_state_dict(settings['pretrained']), VISION_TOWERS.get(settings['type'])
    return cls.folder_state(state) if hasattr(cls, 'folder_state') else state


def _tower_settings(settings: dict) -> dict:
    if 'pretrained' not in settings:
        return settings
    return {**settings, 'config': {**_tower_config(settings), **settings.get('config', {})}}


def _llm_settings(settings: dict) -> dict:
    if 'pretrained' not in settings:
        return settings
    config = read_json(_folder(settings, 'LLM') / 'config.json')
    family = family_of((config.get('architectures') or [None])[0])
    if settings.get('type', family) != family:
        raise SpecError(f'llm type {settings["type"]!r} but {settings["pretrained"]} holds a {family} model')
    return {**settings, 'type': family, 'config': {**config, **settings.get('config', {})}}


def resolve_parts(spec: dict):
    """A parts spec -> (ModelSpec, tokenizer with the image tokens), from config and tokenizer files."""
    missing = [name for name in ('vision_tower', 'llm', 'template') if name not in spec]
    if missing:
        raise SpecError(f'model spec from parts: missing {missing} (give checkpoint=FOLDER, or every part)')
    if 'pretrained' not in spec['llm']:
        raise SpecError('model spec from parts: llm needs pretrained=FOLDER (its tokenizer is the model\'s)')
    tower, llm = _tower_settings(dict(spec['vision_tower'])), _llm_settings(dict(spec['llm']))
    tokenizer = load_tokenizer(llm['pretrained'])
    add_image_tokens(tokenizer, get_template(spec['template']['type']).added_tokens)
    if len(tokenizer) > llm['config'].get('vocab_size', 0):
        llm['config'] = {**llm['config'], 'vocab_size': len(tokenizer)}
    image_size = tower['config'].get('image_size', 448)
    processor = {'type': 'internvl_dynamic', 'image_size': image_size, **spec.get('image_processor', {})}
    return ModelSpec(vision_tower=tower, connector=dict(spec.get('connector') or DEFAULT_CONNECTOR), llm=llm,
                     image_processor=processor, template=dict(spec['template'])), tokenizer


def llm_state(llm: dict) -> dict:
    """An LLM folder's weights under the package's (transformers') names."""
    state = read_state_dict(llm['pretrained'])
    key_map = LLMS.get(llm['type']).key_map
    if key_map is not None:  # a family released under names of its own (InternLM2)
        state = key_map.from_release(state)
    return state


def trained_connector(checkpoint) -> dict:
    """A previous stage's connector (and image_newline), from its work dir or checkpoint: LLaVA's stage 2
    starts from stage 1's projector (`pretrain_mm_mlp_adapter`)."""
    if not checkpoint:
        return {}
    state = read_training_checkpoint(checkpoint)
    kept = {k[len('model.'):]: v for k, v in state.items()
            if k.startswith('model.connector.') or k == 'model.image_newline'}
    if not kept:
        raise CheckpointError(f'{checkpoint}: holds no trained connector (model.connector.*); was the connector '
                              f'trained in that run?')
    return kept


# --- part folders written (the tiny factory writes them; real ones come from their owners) ----------
def save_vision_folder(model: VisionLanguageModel, out) -> Path:
    """An InternViT folder like OpenGVLab's InternViT-*: config.json + unprefixed safetensors."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / 'config.json', {**model.spec.vision_tower['config'], 'architectures': ['InternVisionModel']})
    write_weights(model.vision_tower.state_dict(), out, torch.float32, 5 * 1024 ** 3)
    return out


def save_llm_folder(model: VisionLanguageModel, tokenizer, out) -> Path:
    """A plain transformers causal-LM folder (transformers' own save_pretrained) with its tokenizer."""
    if model.spec.component('llm').key_map is not None:  # its folders are remote-code ones with release names
        raise CheckpointError(f'LLM folders are written for families with transformers parameter names, not '
                              f'{model.spec.family}')
    out = Path(out)
    model.llm.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


__all__ = ['llm_state', 'resolve_parts', 'save_llm_folder', 'save_vision_folder', 'tower_state', 'trained_connector']
