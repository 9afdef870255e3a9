"""Where a recipe's model comes from: a checkpoint folder of any layout (with the recipe's spec
settings on top), or parts — a vision-tower folder + an LLM folder + a freshly initialised
connector (LLaVA's stage 1, InternVL's pretraining):

    spec = dict(vision_tower=dict(type='intern_vit', pretrained='models/InternViT-300M-448px'),
                connector=dict(type='pixel_shuffle_mlp'),
                llm=dict(type='qwen2', pretrained='models/Qwen2-0.5B-Instruct'),
                template=dict(type='internvl2_5'))      # image_processor defaults to the tower's size

From parts, the LLM folder's tokenizer gets the InternVL image tokens (added as special tokens after
its own, as the official finetune script does); when that grows the vocabulary, the new input and
output embedding rows start at the mean of the old ones (the official script sets the output rows
so; transformers' mean resizing samples the input rows around the same mean).
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


def _tower_state(settings: dict) -> dict:
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


def resolve_spec(checkpoint=None, spec: dict = None):
    """(ModelSpec, tokenizer) of a recipe's model without loading weights."""
    from . import load_tokenizer as folder_tokenizer, read_spec
    if checkpoint:
        return read_spec(checkpoint).override(spec), folder_tokenizer(checkpoint)
    if not spec:
        raise SpecError('no model: set checkpoint=FOLDER, or spec= with the parts')
    return resolve_parts(spec)


def _grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    if weight.shape[0] >= rows:
        return weight
    mean = weight.float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(rows - weight.shape[0], -1)])


def _llm_state(llm: dict, vocab_rows: int) -> dict:
    state = read_state_dict(llm['pretrained'])
    key_map = LLMS.get(llm['type']).key_map
    if key_map is not None:  # a family released under names of its own (InternLM2)
        state = key_map.from_release(state)
    embeddings = ('model.embed_tokens.weight', 'lm_head.weight')
    return {k: _grow_rows(v, vocab_rows) if k in embeddings else v for k, v in state.items()}


def _fresh_init(part: torch.nn.Module) -> None:
    """A part that starts from scratch: PyTorch's default init, then the component's own if it has one."""
    for module in part.modules():
        if hasattr(module, 'reset_parameters'):
            module.reset_parameters()
    if hasattr(part, '_init_weights'):
        part.apply(part._init_weights)


def _trained_connector(checkpoint) -> dict:
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


def build_model(checkpoint=None, spec: dict = None, dtype=torch.float32, device='cpu', attn_implementation=None):
    """(VisionLanguageModel, tokenizer) of a recipe: a folder of any layout, or parts."""
    from . import load
    if checkpoint:
        return load(checkpoint, dtype=dtype, device=device, attn_implementation=attn_implementation,
                    spec_overrides=spec)
    model_spec, tokenizer = resolve_parts(spec or {})
    model = VisionLanguageModel(model_spec, attn_implementation, init_weights=False)
    _fresh_init(model.connector)
    state = _trained_connector(model_spec.connector.get('pretrained'))
    if 'pretrained' in model_spec.vision_tower:
        state.update({'vision_tower.' + k: v for k, v in _tower_state(model_spec.vision_tower).items()})
    else:
        _fresh_init(model.vision_tower)
    vocab = model_spec.llm['config']['vocab_size']
    state.update({'language_model.' + k: v for k, v in _llm_state(model_spec.llm, vocab).items()})
    result = model.load_state_dict(state, strict=False)
    expected_missing = set() if model_spec.connector.get('pretrained') else \
        {k for k in model.state_dict() if k.startswith('connector.') or k == 'image_newline'}
    if 'pretrained' not in model_spec.vision_tower:
        expected_missing |= {k for k in model.state_dict() if k.startswith('vision_tower.')}
    missing = set(result.missing_keys) - expected_missing
    if missing or result.unexpected_keys:
        key = sorted(missing or result.unexpected_keys)[0]
        raise CheckpointError(f'parts do not match their configs ({len(missing)} missing, '
                              f'{len(result.unexpected_keys)} unexpected weights, e.g. {key!r})')
    model.to(device=device, dtype=dtype).eval()
    model.set_tokenizer(tokenizer)
    return model, tokenizer


# --- part folders (the tiny factory writes them; real ones come from their owners) ------------------
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
    model.language_model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


__all__ = ['build_model', 'resolve_parts', 'resolve_spec', 'save_llm_folder', 'save_vision_folder']
