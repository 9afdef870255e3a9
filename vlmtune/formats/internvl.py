"""Layout `internvl`: OpenGVLab's official remote-code folders (format doc §1-§3): config.json of
`InternVLChatModel` with `auto_map`, safetensors under `vision_model.` / `mlp1.` / `language_model.`,
tokenizer with a chat_template, generation_config.json and the self-contained remote code of
internvl_remote/ (the product this layout ships; the package computes with its own components).

Reading executes no file of the folder. Config fields the spec does not own are carried through in
their original order, so a folder loaded and saved again has the same config.json.
"""
import json
import shutil
import sys
from pathlib import Path
from typing import Optional

import transformers

from ..data.templates import REGISTRY as TEMPLATES
from ..model.llm import REGISTRY as LLM_REGISTRY
from ..model.llm import entries, family_of
from ..model.spec import ModelSpec
from .common import DTYPE_NAMES, CheckpointError, read_json, read_state_dict, write_json, write_weights
from .internvl_remote.configuration_internvl_chat import LLM_CONFIG_CLASSES, InternVLChatConfig
from .internvl_remote.conversation import conv_templates as REMOTE_TEMPLATES
from .registry import register_layout
from .tokenizers import load_tokenizer, save_tokenizer

NAME = 'internvl'
RECORDS_EXIF_RULE = True  # a non-default EXIF orientation rule is kept in the folder
ORDER = 10  # formats/registry.py: detection and natural-layout order
ARCHITECTURE = 'InternVLChatModel'
REMOTE_DIR = Path(__file__).parent / 'internvl_remote'
REMOTE_FILES = ['configuration_internvl_chat.py', 'configuration_intern_vit.py', 'modeling_internvl_chat.py',
                'modeling_intern_vit.py', 'conversation.py',
                # modeling_internvl_chat.py imports these for InternLM2 LLMs, so every folder ships them.
                'configuration_internlm2.py', 'modeling_internlm2.py', 'qwen3.py', 'qwen3_moe.py']
# LLMs newer than the installed transformers (Qwen3 / Qwen3-MoE below 4.51): the package's own component
# files, shipped as they are (self-contained), as their entries say.
LLM_DIR = Path(__file__).parents[1] / 'model' / 'llm'
SHIPPED_FROM_LLM = tuple(sorted({name for entry in entries() for name in entry.shipped_files}))
SHIPPING_ARCHITECTURES = tuple(entry.architecture for entry in entries() if entry.shipped_files)
# The remote code finds those beside it in a folder; inside the package the LLM registry has them.
for _arch in SHIPPING_ARCHITECTURES:
    if _arch in LLM_CONFIG_CLASSES:
        LLM_CONFIG_CLASSES[_arch] = LLM_CONFIG_CLASSES[_arch] or LLM_REGISTRY.get(family_of(_arch)).config_class
INTERNLM2_TOKENIZER_FILE = 'tokenization_internlm2.py'
AUTO_MAP = {'AutoConfig': 'configuration_internvl_chat.InternVLChatConfig',
            'AutoModel': 'modeling_internvl_chat.InternVLChatModel',
            'AutoModelForCausalLM': 'modeling_internvl_chat.InternVLChatModel'}
INTERNLM2_LLM_AUTO_MAP = {'AutoConfig': 'configuration_internlm2.InternLM2Config',
                          'AutoModel': 'modeling_internlm2.InternLM2ForCausalLM',
                          'AutoModelForCausalLM': 'modeling_internlm2.InternLM2ForCausalLM'}
REQUIRED_FIELDS = ('vision_config', 'llm_config', 'template', 'downsample_ratio')
REQUIRED_VISION_FIELDS = ('image_size', 'patch_size', 'hidden_size', 'num_attention_heads',
                          'intermediate_size', 'num_hidden_layers')
# Top-level fields the spec owns; everything else is carried through unchanged.
OWNED = ('vision_config', 'llm_config', 'select_layer', 'downsample_ratio', 'ps_version', 'template', 'system_message',
         'force_image_size', 'dynamic_image_size', 'use_thumbnail', 'min_dynamic_patch', 'max_dynamic_patch',
         'exif_orientation')
# Package part -> official prefix.
LLM_PREFIX = 'llm.'
PREFIXES = {'vision_tower.': 'vision_model.', 'connector.': 'mlp1.', LLM_PREFIX: 'language_model.'}
SUPPORTED = {'vision_tower': ('intern_vit',), 'connector': ('pixel_shuffle_mlp',),
             'image_processor': ('internvl_dynamic',)}


def held_llms() -> list:
    """The LLM entries this layout holds: those whose architecture the remote code builds."""
    return [entry for entry in entries() if entry.architecture in LLM_CONFIG_CLASSES]


def detect(folder) -> bool:
    path = Path(folder) / 'config.json'
    try:
        return (json.loads(path.read_text(encoding='utf-8')).get('architectures') or [None])[0] == ARCHITECTURE
    except (OSError, ValueError, AttributeError):
        return False


def read_config(folder) -> dict:
    """config.json, validated: every failure is one line naming the field."""
    path = Path(folder) / 'config.json'
    cfg = read_json(path, 'an official folder has config.json')
    for key in REQUIRED_FIELDS:
        if cfg.get(key) is None:
            raise CheckpointError(f'{path}: missing field {key!r}')
    for key in REQUIRED_VISION_FIELDS:
        if key not in cfg['vision_config']:
            raise CheckpointError(f'{path}: missing field vision_config.{key}')
    llm_arch = (cfg['llm_config'].get('architectures') or [None])[0]
    if llm_arch not in LLM_CONFIG_CLASSES:
        raise CheckpointError(f'{path}: llm_config.architectures[0] is {llm_arch!r}; '
                              f'supported: {sorted(LLM_CONFIG_CLASSES)}')
    if cfg.get('system_message', '') is None:
        raise CheckpointError(f'{path}: "system_message" is null; remove the field or give a string')
    if cfg['template'] not in TEMPLATES:
        raise CheckpointError(f'{path}: template {cfg["template"]!r} is unknown; known: {TEMPLATES.names()}')
    return cfg


def spec_from_config(cfg: dict) -> ModelSpec:
    vision = cfg['vision_config']
    template = {'type': cfg['template']}
    if 'system_message' in cfg:
        template['system_message'] = cfg['system_message']
    return ModelSpec(
        vision_tower={'type': 'intern_vit', 'config': vision, 'select_layer': cfg.get('select_layer', -1)},
        connector={'type': 'pixel_shuffle_mlp', 'downsample_ratio': cfg['downsample_ratio'],
                   'ps_version': cfg.get('ps_version', 'v1')},  # the config class's default is v1
        llm={'type': family_of(cfg['llm_config']['architectures'][0]), 'config': cfg['llm_config']},
        image_processor={'type': 'internvl_dynamic', 'image_size': cfg.get('force_image_size') or vision['image_size'],
                         'min_tiles': cfg.get('min_dynamic_patch', 1), 'max_tiles': cfg.get('max_dynamic_patch', 6),
                         'use_thumbnail': bool(cfg.get('use_thumbnail', True)),
                         'dynamic': bool(cfg.get('dynamic_image_size', True)),
                         **({'exif': cfg['exif_orientation']} if cfg.get('exif_orientation') else {})},
        template=template,
        extras={NAME: {'fields': {k: v for k, v in cfg.items() if k not in OWNED}, 'order': list(cfg),
                       'force_image_size_null': cfg.get('force_image_size') is None}})


def read_spec(folder) -> ModelSpec:
    try:
        return spec_from_config(read_config(folder))
    except ValueError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f'{Path(folder) / "config.json"}: {exc}') from None


def unsupported(spec: ModelSpec) -> Optional[str]:
    """Why this layout cannot hold the composition, or None."""
    for name, types in SUPPORTED.items():
        if getattr(spec, name)['type'] not in types:
            return f'{name} {getattr(spec, name)["type"]!r} (the internvl layout holds {name} {list(types)})'
    arch = spec.component('llm').architecture
    if arch not in LLM_CONFIG_CLASSES:
        return f'LLM {arch} (the internvl remote code runs {sorted(LLM_CONFIG_CLASSES)})'
    if spec.template['type'] not in REMOTE_TEMPLATES:  # its chat() renders with its own conversation.py
        return f"template {spec.template['type']!r} (the internvl remote code knows {sorted(REMOTE_TEMPLATES)})"
    return None


# --- key maps -------------------------------------------------------------------------------------
def to_layout(state: dict, spec: ModelSpec) -> dict:
    """Package keys -> official keys (an LLM with release names of its own: its entry's key map)."""
    key_map = spec.component('llm').key_map
    return _map(state, spec, PREFIXES, key_map.to_release if key_map else None)


def from_layout(state: dict, spec: ModelSpec) -> dict:
    """Official keys -> package keys."""
    key_map = spec.component('llm').key_map
    return _map(state, spec, {v: k for k, v in PREFIXES.items()}, key_map.from_release if key_map else None)


def _map(state, spec, prefixes, llm_map):
    """Prefix renames; under the LLM's prefix, the entry's key map (when it has one) on LLM-relative keys."""
    llm_source = next(p for p in prefixes if p in (LLM_PREFIX, PREFIXES[LLM_PREFIX]))
    out, llm = {}, {}
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            out[key] = value  # reported as unexpected by the loader
        elif prefix == llm_source and llm_map is not None:
            llm[key[len(prefix):]] = value
        else:
            out[prefixes[prefix] + key[len(prefix):]] = value
    if llm:
        try:
            out.update({prefixes[llm_source] + k: v for k, v in llm_map(llm).items()})
        except KeyError as exc:
            raise CheckpointError(f'unexpected {spec.family} weight key {llm_source}{exc.args[0]}') from None
    return out


def part_of(key: str) -> str:
    """Which package part an official key belongs to."""
    for part, prefix in PREFIXES.items():
        if key.startswith(prefix):
            return part.rstrip('.')
    return 'other'


# --- reading ----------------------------------------------------------------------------------
def merge_official_lora(state: dict, prefix: str) -> dict:
    """Fold PEFT LoRA weights saved by the official trainer (`use_*_lora` > 0, alpha = 2r) into the
    base weights, and strip PEFT's `base_model.model.` wrapper from the key names."""
    scale = 2.0  # alpha / r with alpha = 2r
    wrapper = f'{prefix}base_model.model.'
    merged = {}
    for key, value in state.items():
        if not key.startswith(wrapper) or '.lora_' in key:
            if not key.startswith(wrapper):
                merged[key] = value
            continue
        plain = prefix + key[len(wrapper):].replace('.base_layer.', '.')
        stem = key.rsplit('.base_layer.weight', 1)[0] if key.endswith('.base_layer.weight') else None
        if stem is not None and f'{stem}.lora_A.default.weight' in state:
            lora_a = state[f'{stem}.lora_A.default.weight'].float()
            lora_b = state[f'{stem}.lora_B.default.weight'].float()
            value = (value.float() + scale * lora_b @ lora_a).to(value.dtype)
        merged[plain] = value
    return merged


def read_state(folder) -> dict:
    """The folder's weights under official names, with official unmerged LoRA folded in."""
    cfg = read_config(folder)
    state = read_state_dict(folder)
    if cfg.get('use_backbone_lora'):
        state = merge_official_lora(state, 'vision_model.')
    if cfg.get('use_llm_lora'):
        state = merge_official_lora(state, 'language_model.')
    return state


def describe(folder, spec: ModelSpec) -> dict:
    """For `vlmtune inspect`: the stored dtype and what the official tools / LMDeploy would miss."""
    folder = Path(folder)
    cfg = read_config(folder)
    missing = [f'remote code {name}' for name in REMOTE_FILES[:5] if not (folder / name).exists()]
    if spec.family == 'internlm2':
        missing += [name for name in ('modeling_internlm2.py', 'configuration_internlm2.py', 'tokenizer.model')
                    if not (folder / name).exists()]
    elif not ((folder / 'vocab.json').exists() and (folder / 'merges.txt').exists()) \
            and not (folder / 'tokenizer.model').exists():
        missing.append('slow tokenizer files (vocab.json + merges.txt), needed by LMDeploy')
    if not cfg.get('auto_map'):
        missing.append('config.json auto_map')
    tok_path = folder / 'tokenizer_config.json'
    tok_cfg = json.loads(tok_path.read_text(encoding='utf-8')) if tok_path.exists() else None
    if tok_cfg is None:
        missing.append('tokenizer_config.json')
    elif not tok_cfg.get('chat_template'):
        missing.append('tokenizer chat_template (LMDeploy would join turns with no roles)')
    end_token = spec.build_template().end_token
    gen_path = folder / 'generation_config.json'
    if not gen_path.exists():
        missing.append('generation_config.json')
    elif tok_cfg is not None:
        eos = json.loads(gen_path.read_text(encoding='utf-8')).get('eos_token_id')
        eos = eos if isinstance(eos, list) else [eos]
        added = {v.get('content'): int(k) for k, v in tok_cfg.get('added_tokens_decoder', {}).items()}
        if end_token in added and added[end_token] not in eos:
            missing.append(f'generation_config eos_token_id lacks {end_token} ({added[end_token]})')
    return {'torch_dtype': cfg.get('torch_dtype'), 'missing': missing}


# --- writing ----------------------------------------------------------------------------------
def config_dict(spec: ModelSpec, dtype) -> dict:
    """config.json: the spec's fields in the official schema, other fields as they came, every official
    field, `auto_map`, LoRA ranks 0, and never `system_message: null`."""
    processor, tower, connector = spec.build_image_processor(), spec.vision_tower, spec.connector
    extras = spec.extras.get(NAME, {'fields': {}, 'order': []})
    fields = extras['fields']
    force = processor.image_size
    if extras.get('force_image_size_null') and force == tower['config'].get('image_size'):
        force = None  # the folder said "the ViT's size"; keep saying it
    owned = dict(vision_config=tower['config'], llm_config=spec.llm['config'], select_layer=tower.get('select_layer', -1),
                 # PixelShuffleMLP's defaults where the spec leaves them out
                 downsample_ratio=connector.get('downsample_ratio', 0.5), ps_version=connector.get('ps_version', 'v2'),
                 template=spec.template['type'], force_image_size=force, dynamic_image_size=processor.dynamic,
                 use_thumbnail=processor.use_thumbnail, min_dynamic_patch=processor.min_tiles,
                 max_dynamic_patch=processor.max_tiles)
    if spec.system_message is not None:
        owned['system_message'] = spec.system_message
    if spec.exif_rule != 'ignore':  # the official preprocessing ignores EXIF; only another rule is recorded
        owned['exif_orientation'] = spec.exif_rule
    values = {**fields, **owned}
    kwargs = {k: values[k] for k in extras['order'] if k in values}
    kwargs.update({k: v for k, v in values.items() if k not in kwargs})
    cfg = InternVLChatConfig(**kwargs).to_dict()
    cfg.update(architectures=[ARCHITECTURE], auto_map=AUTO_MAP, model_type='internvl_chat',
               torch_dtype=DTYPE_NAMES[dtype], transformers_version=transformers.__version__,
               use_backbone_lora=0, use_llm_lora=0, tie_word_embeddings=False, pad2square=cfg.get('pad2square', False),
               _commit_hash=None)
    cfg['vision_config'].update(architectures=['InternVisionModel'], model_type='intern_vit_6b',
                                torch_dtype=DTYPE_NAMES[dtype])
    llm = cfg['llm_config']
    llm.update(torch_dtype=DTYPE_NAMES[dtype], tie_word_embeddings=False)
    for part in (cfg['vision_config'], llm):  # as written from a built model's configs (transformers 4.48 marks them)
        if '_attn_implementation_autoset' in part:
            part['_attn_implementation_autoset'] = True
    if llm['architectures'][0] == 'InternLM2ForCausalLM':
        llm['auto_map'] = INTERNLM2_LLM_AUTO_MAP
    if cfg.get('system_message', '') is None:  # a null system message renders as "None" officially
        cfg.pop('system_message')
    return cfg


def generation_config_dict(spec: ModelSpec, tokenizer) -> dict:
    llm = spec.llm_config()
    eos = llm.eos_token_id if isinstance(llm.eos_token_id, list) else [llm.eos_token_id]
    eos = [e for e in eos if e is not None]
    end_id = tokenizer.convert_tokens_to_ids(spec.build_template().end_token)
    if end_id not in eos:
        eos.append(end_id)
    return {'_from_model_config': True, 'bos_token_id': llm.bos_token_id, 'eos_token_id': eos,
            'pad_token_id': tokenizer.pad_token_id, 'transformers_version': transformers.__version__}


def copy_remote_code(out: Path, llm_architecture: str, base_folder=None) -> None:
    base = Path(base_folder) if base_folder else None
    # A base folder that carries official remote code keeps its own files.
    # Qwen3 LLMs (InternVL3.5) get ours: the official 3.5 code imports transformers' Qwen3 (>= 4.51 only).
    official = base is not None and (base / 'modeling_internvl_chat.py').exists()
    source = base if official and llm_architecture not in SHIPPING_ARCHITECTURES else REMOTE_DIR
    names = list(REMOTE_FILES)
    if llm_architecture == 'InternLM2ForCausalLM':
        names.append(INTERNLM2_TOKENIZER_FILE)
    if source is base:
        names = sorted({p.name for p in base.glob('*.py')} | {n for n in names if not (base / n).exists()})
    for name in names:
        if name in SHIPPED_FROM_LLM and not (source is base and (base / name).exists()):
            src = LLM_DIR / name
        else:
            src = source / name if (source / name).exists() else REMOTE_DIR / name
        shutil.copyfile(src, out / name)
    if source is REMOTE_DIR:  # our remote code: say which transformers versions it was tested with
        shutil.copyfile(REMOTE_DIR / 'README.md', out / 'README.md')


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    """Write the folder's files into `staging` (the caller renames it into place)."""
    reason = unsupported(spec)
    if reason:
        raise CheckpointError(f'the internvl layout cannot hold {reason}; choose another layout (--to)')
    write_json(staging / 'config.json', config_dict(spec, dtype))
    write_weights(to_layout(state, spec), staging, dtype, max_shard_bytes)
    save_tokenizer(tokenizer, staging, spec.build_template().chat_template(spec.system_message))
    (staging / 'generation_config.json').write_text(json.dumps(generation_config_dict(spec, tokenizer), indent=2),
                                                    encoding='utf-8')
    copy_remote_code(staging, spec.component('llm').architecture, base_folder)


__all__ = ['NAME', 'detect', 'read_spec', 'read_state', 'load_tokenizer', 'unsupported', 'to_layout', 'from_layout',
           'part_of', 'write', 'read_config']


register_layout(sys.modules[__name__])
