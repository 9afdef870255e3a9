"""Layout `internvl_hf`: transformers' native `InternVLForConditionalGeneration` folders (transformers
>= 4.52), written from and read into the official InternVL layout's config (`internvl_hf_config`), key
names (`internvl_hf_keys`) and processor files (`internvl_hf_processor`). Checked by transformers' own
classes in 4.57.6 and 5.24.0 (`tests/test_internvl_hf.py`): logits equal the remote code's.
"""
import shutil
import sys
from pathlib import Path

import torch

from ..model.spec import ModelSpec
from . import internvl
from .common import CheckpointError, folder_architecture, read_json, read_state_dict, write_json, write_weights
from .internvl_hf_config import HF_ARCH, _dtype_name, _llm_to_hf, check_expressible, hf_config, official_config
from .internvl_hf_keys import OWN_KEY, _arch, state_from_hf, state_to_hf
from .registry import register_layout
from .tokenizers import load_tokenizer as official_tokenizer
from .tokenizers import save_tokenizer

NAME, ARCHITECTURE = 'internvl_hf', HF_ARCH
ORDER = 20  # formats/registry.py: detection and natural-layout order
# The official layout's tokenizer and generation files, kept for the exact way back (transformers
# ignores the folder; the -hf tokenizer beside it is derived from them).
OFFICIAL_FILES = 'official_tokenizer'
PARTS = {'model.vision_tower.': 'vision_tower', 'vision_tower.': 'vision_tower',
         'model.multi_modal_projector.': 'connector', 'multi_modal_projector.': 'connector'}


def detect(folder) -> bool:
    return folder_architecture(folder) == HF_ARCH


def _official(folder) -> dict:
    folder = Path(folder)
    hf = read_json(folder / 'config.json')
    pre_path = folder / 'preprocessor_config.json'
    try:
        official = official_config(hf, read_json(pre_path) if pre_path.exists() else None)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{folder / "config.json"}: {exc}') from None
    order = (hf.get(OWN_KEY) or {}).get('key_order', {})  # the official config.json's own key order
    for part in ('vision_config', 'llm_config'):
        official[part] = _ordered(official[part], order.get(part, []))
    return _ordered(official, order.get('config', []))


def _ordered(data: dict, order: list) -> dict:
    return {**{k: data[k] for k in order if k in data}, **data}


def read_spec(folder) -> ModelSpec:
    return internvl.spec_from_config(_official(folder))


def read_state(folder) -> dict:
    return read_state_dict(folder)


def unsupported(spec: ModelSpec):
    reason = internvl.unsupported(spec)
    if reason:
        return reason
    try:
        check_expressible(internvl.config_dict(spec, torch.float32))
    except ValueError as exc:
        return str(exc).replace('internvl_hf: ', '')
    return None


def to_layout(state: dict, spec: ModelSpec) -> dict:
    """Package keys -> -hf keys (through the official names)."""
    return state_to_hf(internvl.to_layout(state, spec), {'llm_config': spec.llm['config']})


def from_layout(state: dict, spec: ModelSpec) -> dict:
    official = {'llm_config': spec.llm['config']}
    hf = {'text_config': _llm_to_hf(spec.llm['config'], None)[0], OWN_KEY: {'llm_architecture': _arch(official['llm_config'])}}
    try:
        return internvl.from_layout(state_from_hf(state, hf), spec)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def part_of(key: str) -> str:
    return next((part for prefix, part in PARTS.items() if key.startswith(prefix)), 'llm')


def load_tokenizer(folder):
    """The official tokenizer when the folder keeps it (ids equal the -hf one's; saving the official
    layout again then gives the same files), else transformers' own from the folder."""
    if (Path(folder) / OFFICIAL_FILES).is_dir():
        return official_tokenizer(Path(folder) / OFFICIAL_FILES)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(folder))


def describe(folder, spec: ModelSpec) -> dict:
    folder = Path(folder)
    missing = [name for name in ('preprocessor_config.json', 'processor_config.json', 'tokenizer_config.json',
                                 'generation_config.json') if not (folder / name).exists()]
    if (folder / 'tokenizer_config.json').exists() and not read_json(folder / 'tokenizer_config.json').get('chat_template'):
        missing.append('tokenizer chat_template')
    return {'torch_dtype': _dtype_name(read_json(folder / 'config.json')), 'missing': missing}


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    """The -hf folder: config.json, weights under the -hf names, and the processor, tokenizer,
    chat-template and generation files derived from the official ones (see internvl_hf_processor)."""
    from .internvl_hf_processor import write_processor_files
    official = internvl.config_dict(spec, dtype)
    check_expressible(official)
    template = spec.build_template()
    kept = staging / OFFICIAL_FILES
    kept.mkdir()
    save_tokenizer(tokenizer, kept, template.chat_template(spec.system_message))
    write_json(kept / 'generation_config.json', internvl.generation_config_dict(spec, tokenizer))
    tokens_per_tile = spec.image_tokens().per_tile
    image_token_id = write_processor_files(kept, official, staging, template.processor_chat_template(spec.system_message),
                                           template.end_token, tokens_per_tile)
    cfg = hf_config(official, image_token_id, tokens_per_tile)
    cfg[OWN_KEY]['key_order'] = {'config': list(official), 'vision_config': list(official['vision_config']),
                                  'llm_config': list(official['llm_config'])}
    write_json(staging / 'config.json', cfg)
    write_weights(to_layout(state, spec), staging, dtype, max_shard_bytes)
    shutil.copyfile(Path(__file__).parent / 'internvl_hf_README.md', staging / 'README.md')


register_layout(sys.modules[__name__])
