"""Layout `composite`: any tower x connector x transformers LLM that no family layout holds, as a
self-contained remote-code folder (like TinyLLaVA Factory's checkpoints):
`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` loads it without vlmtune.

The folder ships composite_remote/ (config + model) and vlmtune's own component files for the towers
and connectors, copied as they are but for their registry import (there is no registry in a folder).
Weights keep the package's names, the LLM's under `language_model.` (the folder model's attribute). The tokenizer carries the template's chat template, and
preprocessor_config.json names the transformers image processor that computes the same pixels
(CLIPImageProcessor for the centre crop, BlipImageProcessor for the plain resize).
Held: towers clip / siglip / blip2_vision / intern_vit (the internvl layout's InternViT code), any connector
file shipped here, every LLM family whose entry the installed transformers builds from its config or whose
entry ships its own files (Qwen3 / Qwen3-MoE below transformers 4.51) under the package's parameter names, the
`square` processor.
"""
import shutil
import sys
from pathlib import Path
from typing import Optional

import transformers

from ..data.normalisation import CLIP_MEAN, CLIP_STD
from ..model.llm import entries
from ..model.spec import ModelSpec
from .common import DTYPE_NAMES, folder_architecture, read_json, read_state_dict, write_json, write_weights
from .registry import register_layout
from .tokenizers import load_tokenizer as _load_tokenizer
from .tokenizers import save_tokenizer

NAME = 'composite'
ORDER = 60  # formats/registry.py: detection and natural-layout order
ARCHITECTURE = 'CompositeModel'
MODEL_DIR = Path(__file__).parents[1] / 'model'
REMOTE_DIR = Path(__file__).parent / 'composite_remote'
INTERNVL_REMOTE = Path(__file__).parent / 'internvl_remote'
SHIPPED = {'.': ('cpu_half.py', 'checkpointing.py'),  # the towers' CPU half-precision conv, layer checkpointing
           'vision_tower': ('_transformers_vit.py', 'clip.py', 'siglip.py', 'blip2_vision.py'),
           'connector': ('mlp.py', 'pixel_shuffle_mlp.py', 'qformer.py', 'resampler.py'),
           'llm': tuple(sorted({name for entry in entries() for name in entry.shipped_files}))}
REGISTRY_IMPORT, SHIM = 'from . import register\n', 'from ._composite_register import register\n'
# model/ files sit beside the top-level ones in a folder: their parent imports become sibling imports
PARENT_IMPORTS = {f'from ..{Path(name).stem} import': f'from .{Path(name).stem} import' for name in SHIPPED['.']}
TOWERS, CONNECTORS = ('clip', 'siglip', 'blip2_vision', 'intern_vit'), ('linear', 'identity', 'pixel_shuffle_mlp', 'qformer',
                                                             'resampler', *(f'mlp{d}x_gelu' for d in range(1, 9)))


def held_llms() -> list:
    """Families the folder's code builds: transformers' own class, or the entry's shipped files, with the
    package's parameter names (a family with a key map of its own keeps its release names elsewhere)."""
    return [e.family for e in entries() if e.key_map is None and (e.in_transformers or e.shipped_files)]


AUTO_MAP = {'AutoConfig': 'configuration_composite.CompositeConfig',
            'AutoModel': 'modeling_composite.CompositeModel',
            'AutoModelForCausalLM': 'modeling_composite.CompositeModel'}


def detect(folder) -> bool:
    return folder_architecture(folder) == ARCHITECTURE


def read_spec(folder) -> ModelSpec:
    cfg = read_json(Path(folder) / 'config.json', 'a composite folder has config.json')
    return ModelSpec(vision_tower=cfg['vision_tower'], connector=cfg['connector'], llm=cfg['llm'],
                     image_processor=cfg['vlmtune']['image_processor'], template=cfg['vlmtune']['template'])


def read_state(folder) -> dict:
    return read_state_dict(folder)


def load_tokenizer(folder):
    return _load_tokenizer(folder)


def unsupported(spec: ModelSpec) -> Optional[str]:
    if spec.vision_tower['type'] not in TOWERS:
        return f"vision_tower {spec.vision_tower['type']!r} (the composite layout ships {list(TOWERS)})"
    if spec.connector['type'] not in CONNECTORS:
        return f"connector {spec.connector['type']!r} (the composite layout ships {sorted(CONNECTORS)})"
    if spec.family not in held_llms() or spec.llm.get('moe'):
        return f"LLM {spec.family!r} (the composite layout builds transformers' own {held_llms()})"
    if spec.image_processor['type'] != 'square':
        return f"image processor {spec.image_processor['type']!r} (the composite layout has square only)"
    return None


# The folder's model (composite_remote) names its LLM `language_model`; everything else keeps the package's names.
LLM_PREFIXES = ('llm.', 'language_model.')


def _renamed(state: dict, old: str, new: str) -> dict:
    return {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}


def part_of(key: str) -> str:
    part = key.split('.', 1)[0]
    return 'llm' if part == 'language_model' else part


def to_layout(state: dict, spec: ModelSpec) -> dict:
    return _renamed(state, *LLM_PREFIXES)


def from_layout(state: dict, spec: ModelSpec) -> dict:
    return _renamed(state, *reversed(LLM_PREFIXES))


def image_processor_config(settings: dict) -> dict:
    size, crop = settings.get('image_size', 336), settings.get('crop', True)
    common = {'do_resize': True, 'resample': 3, 'do_rescale': True, 'rescale_factor': 1 / 255, 'do_normalize': True,
              'image_mean': list(settings.get('mean', CLIP_MEAN)), 'image_std': list(settings.get('std', CLIP_STD)),
              'do_convert_rgb': True}
    if crop:
        return {'image_processor_type': 'CLIPImageProcessor', 'size': {'shortest_edge': size}, 'do_center_crop': True,
                'crop_size': {'height': size, 'width': size}, **common}
    return {'image_processor_type': 'BlipImageProcessor', 'size': {'height': size, 'width': size}, **common}


def copy_remote_code(out: Path) -> None:
    for name in ('configuration_composite.py', 'modeling_composite.py'):
        shutil.copyfile(REMOTE_DIR / name, out / name)
    for name in ('configuration_intern_vit.py', 'modeling_intern_vit.py'):  # InternViT: the internvl layout's code
        shutil.copyfile(INTERNVL_REMOTE / name, out / name)
    (out / '_composite_register.py').write_text(
        '"""No registry inside a checkpoint folder: the components register nothing."""\n\n\n'
        'def register(name):\n    return lambda cls: cls\n', encoding='utf-8')
    for folder, names in SHIPPED.items():
        for name in names:
            text = (MODEL_DIR / folder / name).read_text(encoding='utf-8')
            if text.count(REGISTRY_IMPORT) > 1:
                raise RuntimeError(f'{folder}/{name}: more than one registry import to rewrite')
            text = text.replace(REGISTRY_IMPORT, SHIM)
            for package_import, folder_import in PARENT_IMPORTS.items():
                text = text.replace(package_import, folder_import)
            (out / name).write_text(text, encoding='utf-8')


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    reason = unsupported(spec)
    if reason:
        from .common import CheckpointError
        raise CheckpointError(f'the {NAME} layout cannot hold {reason}')
    template = spec.build_template()
    image_id = tokenizer.convert_tokens_to_ids(template.image_tokens[1])  # the context token the features replace
    write_json(staging / 'config.json', {
        'architectures': [ARCHITECTURE], 'model_type': 'vlmtune_composite', 'auto_map': AUTO_MAP,
        'vision_tower': {k: v for k, v in spec.vision_tower.items() if k != 'pretrained'},
        'connector': {k: v for k, v in spec.connector.items() if k != 'pretrained'},
        'llm': {'type': spec.llm['type'], 'config': {**spec.llm['config'], 'model_type': spec.llm_config().model_type}},
        'image_token_id': image_id, 'num_image_token': spec.image_tokens().per_tile, 'torch_dtype': DTYPE_NAMES[dtype],
        'transformers_version': transformers.__version__,
        'vlmtune': {'layout': NAME, 'image_processor': spec.image_processor, 'template': spec.template}})
    write_weights(to_layout(state, spec), staging, dtype, max_shard_bytes)
    save_tokenizer(tokenizer, staging, template.chat_template(spec.system_message))
    write_json(staging / 'preprocessor_config.json', image_processor_config(spec.image_processor))
    copy_remote_code(staging)


def describe(folder, spec: ModelSpec) -> dict:
    missing = [n for n in ('modeling_composite.py', 'configuration_composite.py') if not (Path(folder) / n).exists()]
    return {'torch_dtype': read_json(Path(folder) / 'config.json').get('torch_dtype'), 'missing': missing}


__all__ = ['NAME', 'detect', 'read_spec', 'read_state', 'load_tokenizer', 'unsupported', 'part_of', 'to_layout',
           'from_layout', 'write', 'describe']


register_layout(sys.modules[__name__])
