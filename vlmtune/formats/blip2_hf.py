"""Layout `blip2_hf`: transformers' `Blip2ForConditionalGeneration` folders (BLIP-2 compositions: the
`blip2_vision` tower + the `qformer` connector + a transformers causal LM).

Config: vision_config / qformer_config / text_config / num_query_tokens as Blip2Config has them
(qformer_config.encoder_hidden_size = the tower's width), `image_token_index` = the tokenizer's
`<image>`, so transformers splices the query outputs where the prompt has the image tokens, as the
package does. Keys: `vision_model.*`, `query_tokens`, `qformer.*`, `language_projection.*`,
`language_model.*` (the package's `llm.*`), the package's names under the tower / connector prefixes.
Processor: BlipImageProcessor (plain S x S bicubic resize, CLIP mean/std = the `square` processor with
crop off) and Blip2Processor with `num_query_tokens`. What Blip2Config has no field for (template,
processor settings) is kept under the "vlmtune" key; a folder without it (a hub release) reads as the
`blip2` template: the released prompt, query tokens then BOS + "Question: ... Answer:", as Blip2Processor
builds it.
"""
import sys
from pathlib import Path
from typing import Optional

import transformers

from ..data.normalisation import CLIP_MEAN, CLIP_STD
from ..model.llm import family_of
from ..model.spec import COMPONENTS, ModelSpec
from .common import (DTYPE_NAMES, CheckpointError, folder_architecture, read_json, read_state_dict, write_json,
                     write_weights)
from .llava_hf_processor import template_info
from .registry import register_layout
from .tokenizers import load_tokenizer as _load_tokenizer
from .tokenizers import save_tokenizer

NAME = 'blip2_hf'
ORDER = 50  # formats/registry.py: detection and natural-layout order
ARCHITECTURE = 'Blip2ForConditionalGeneration'
OWN_KEY = 'vlmtune'
TOWER, CONNECTOR = 'blip2_vision', 'qformer'
PREFIXES = {'vision_tower.vision_model.': 'vision_model.', 'connector.query_tokens': 'query_tokens',
            'connector.qformer.': 'qformer.', 'connector.language_projection.': 'language_projection.',
            'llm.': 'language_model.'}
LLM_PREFIX = 'language_model.'
GENERIC = {'architectures', '_name_or_path', 'transformers_version', 'torch_dtype', 'return_dict',
           'output_hidden_states', 'output_attentions', 'use_bfloat16', 'tie_word_embeddings'}


def _clean(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in GENERIC}


def _text_tie(cfg: dict):
    """The LLM's tie_word_embeddings: its text_config's, else the top-level one where it differs from the text
    config class's default (transformers ties the text model's head by the top-level flag)."""
    text = cfg['text_config']
    if 'tie_word_embeddings' in text or 'tie_word_embeddings' not in cfg:
        return text.get('tie_word_embeddings')
    default = transformers.CONFIG_MAPPING[text.get('model_type', 'opt')]().tie_word_embeddings
    return cfg['tie_word_embeddings'] if cfg['tie_word_embeddings'] != default else None


def detect(folder) -> bool:
    return folder_architecture(folder) == ARCHITECTURE


def read_spec(folder) -> ModelSpec:
    path = Path(folder) / 'config.json'
    cfg = read_json(path, 'a blip2_hf folder has config.json')
    try:
        record = cfg.get(OWN_KEY) or {}
        text = _clean(cfg['text_config'])
        tied = _text_tie(cfg)
        if tied is not None:  # the head's tie decides which weights the folder holds
            text['tie_word_embeddings'] = tied
        arch = (cfg['text_config'].get('architectures') or [None])[0] or \
            transformers.models.auto.modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(text.get('model_type', 'opt'))
        text['architectures'] = [arch]
        vision = _clean(cfg['vision_config'])
        qformer = {k: v for k, v in _clean(cfg['qformer_config']).items() if k != 'encoder_hidden_size'}
        pre_path = Path(folder) / 'preprocessor_config.json'
        pre = read_json(pre_path) if pre_path.exists() else {}
        size = (pre.get('size') or {}).get('height') or vision.get('image_size', 224)
        derived = {
            'vision_tower': {'type': TOWER, 'config': vision},
            'connector': {'type': CONNECTOR, 'num_query_tokens': cfg.get('num_query_tokens', 32), 'config': qformer},
            'llm': {'type': family_of(arch), 'config': text},
            'image_processor': {'type': 'square', 'image_size': size, 'crop': False,
                                'mean': pre.get('image_mean', list(CLIP_MEAN)),
                                'std': pre.get('image_std', list(CLIP_STD))},
            'template': {'type': 'blip2'}}
        parts = {name: {**derived[name], **record[name]} if name in record and name in ('image_processor',
                 'template') else derived[name] for name in COMPONENTS}
        for name in ('vision_tower', 'connector'):  # settings beyond the config (select_layer, ...)
            parts[name].update({k: v for k, v in record.get(name, {}).items() if k not in ('config', 'type')})
        return ModelSpec(**parts)
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f'{path}: {exc}') from None


def read_state(folder) -> dict:
    return read_state_dict(folder)


def load_tokenizer(folder):
    return _load_tokenizer(folder)


def unsupported(spec: ModelSpec) -> Optional[str]:
    if spec.vision_tower['type'] != TOWER:
        return f"vision_tower {spec.vision_tower['type']!r} (Blip2ForConditionalGeneration's is {TOWER})"
    if spec.connector['type'] != CONNECTOR:
        return f"connector {spec.connector['type']!r} (BLIP-2's is the {CONNECTOR})"
    if not spec.component('llm').in_transformers:
        return f"LLM {spec.family!r} (Blip2ForConditionalGeneration's text model is a causal LM the installed " \
               f"transformers implements)"
    tower = spec.vision_tower
    if (tower.get('select_layer', -1), tower.get('select_feature', 'cls_patch'), tower.get('post_layernorm', True)) \
            != (-1, 'cls_patch', True):
        return 'a BLIP-2 tower read other than last_hidden_state (select_layer -1, cls_patch, post_layernorm)'
    processor = spec.image_processor
    if processor['type'] != 'square' or processor.get('crop', True):
        return "an image processor other than BLIP's plain resize (square, crop=False)"
    try:  # Blip2Processor repeats one image token, as llava-hf's does
        template_info(spec)
    except (KeyError, ValueError) as exc:
        return f'template: {exc.args[0]}'
    return None


def _rename(state: dict, prefixes: dict) -> dict:
    out = {}
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f'blip2_hf: weight {key!r} belongs to no BLIP-2 part')
        out[prefixes[prefix] + key[len(prefix):]] = value
    return out


def part_of(key: str) -> str:
    if key.startswith('vision_model.'):
        return 'vision_tower'
    return 'llm' if key.startswith('language_model.') else 'connector'


def to_layout(state: dict, spec: ModelSpec) -> dict:
    out = _rename(state, PREFIXES)
    if spec.llm_config().tie_word_embeddings:  # transformers saves tied weights once (released OPT ties)
        out = spec.component('llm').untie(out, LLM_PREFIX)
    return out


def from_layout(state: dict, spec: ModelSpec) -> dict:
    if spec.llm_config().tie_word_embeddings:
        state = spec.component('llm').retie(state, LLM_PREFIX)
    return _rename(state, {v: k for k, v in PREFIXES.items()})


def config_dict(spec: ModelSpec, image_token_id: int, dtype) -> dict:
    tower = spec.component('vision_tower').read_config(spec.vision_tower['config'])
    llm = spec.llm_config()
    record = {name: {k: v for k, v in getattr(spec, name).items() if k not in ('pretrained',)}
              for name in ('image_processor', 'template')}
    record.update({name: {k: v for k, v in getattr(spec, name).items() if k not in ('pretrained', 'config', 'type')}
                   for name in ('vision_tower', 'connector')})
    return {'architectures': [ARCHITECTURE], 'model_type': 'blip-2',
            'vision_config': {**_clean(spec.vision_tower['config']), 'model_type': 'blip_2_vision_model'},
            'qformer_config': {**_clean(spec.connector.get('config') or {}), 'model_type': 'blip_2_qformer',
                               'encoder_hidden_size': tower.hidden_size},
            'text_config': {**_clean(spec.llm['config']), 'model_type': llm.model_type,
                            **{k: v for k, v in spec.llm['config'].items() if k == 'tie_word_embeddings'},
                            'architectures': [spec.component('llm').architecture]},
            'num_query_tokens': spec.connector.get('num_query_tokens', 32), 'image_token_index': image_token_id,
            'tie_word_embeddings': bool(llm.tie_word_embeddings), 'torch_dtype': DTYPE_NAMES[dtype],
            'transformers_version': transformers.__version__, OWN_KEY: {'layout': NAME, 'version': 1, **record}}


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    reason = unsupported(spec)
    if reason:
        raise CheckpointError(f'the {NAME} layout cannot hold {reason}')
    info = template_info(spec, tokenizer)
    image_id = tokenizer.convert_tokens_to_ids(info['image_token'])
    if image_id is None or image_id == tokenizer.unk_token_id:
        raise CheckpointError(f"the tokenizer has no {info['image_token']} token")
    write_json(staging / 'config.json', config_dict(spec, image_id, dtype))
    write_weights(to_layout(state, spec), staging, dtype, max_shard_bytes)
    save_tokenizer(tokenizer, staging, info['tokenizer'])
    processor = spec.build_image_processor()
    write_json(staging / 'preprocessor_config.json', {
        'image_processor_type': 'BlipImageProcessor', 'processor_class': 'Blip2Processor', 'do_resize': True,
        'size': {'height': processor.image_size, 'width': processor.image_size}, 'resample': 3, 'do_rescale': True,
        'rescale_factor': 1 / 255, 'do_normalize': True, 'image_mean': list(processor.mean),
        'image_std': list(processor.std), 'do_convert_rgb': True})
    write_json(staging / 'processor_config.json', {'processor_class': 'Blip2Processor',
                                                   'num_query_tokens': spec.connector.get('num_query_tokens', 32)})


def describe(folder, spec: ModelSpec) -> dict:
    cfg = read_json(Path(folder) / 'config.json')
    missing = [] if cfg.get('image_token_index') is not None else \
        ['image_token_index (transformers then prepends the queries instead of splicing them)']
    return {'torch_dtype': cfg.get('torch_dtype'), 'missing': missing}


__all__ = ['NAME', 'detect', 'read_spec', 'read_state', 'load_tokenizer', 'unsupported', 'part_of', 'to_layout',
           'from_layout', 'write', 'describe']


register_layout(sys.modules[__name__])
