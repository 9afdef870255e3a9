"""Layout `vlmtune`: any composition, lossless. `vlmtune_model.json` (the spec, with the modules a
user's own components live in), safetensors under the package's own names (`vision_tower.*`,
`connector.*`, `llm.*`), tokenizer files with a chat_template. vlmtune reloads it; official tools do not
(use a family layout for those). Version 1 folders named the LLM `language_model.*`; they read as before."""
import importlib
import sys
from pathlib import Path

import transformers

from ..model.spec import COMPONENTS, ModelSpec
from ..model.vlm import PARTS
from .common import DTYPE_NAMES, CheckpointError, read_json, read_state_dict, write_json, write_weights
from .registry import register_layout
from .tokenizers import load_tokenizer, save_tokenizer  # noqa: F401  (load_tokenizer is this layout's loader)

NAME = 'vlmtune'
RECORDS_EXIF_RULE = True  # the spec, EXIF rule included, is kept whole
ORDER = 100  # formats/registry.py: detection and natural-layout order
SPEC_FILE = 'vlmtune_model.json'
VERSION = 2
OLD_LLM_PREFIX = 'language_model.'  # version 1


def detect(folder) -> bool:
    return (Path(folder) / SPEC_FILE).exists()


def _user_modules(spec: ModelSpec) -> list:
    """Modules outside vlmtune that define a component of this spec (imported again on load)."""
    modules = []
    for name in COMPONENTS:
        cls = spec.component(name)
        module = getattr(cls, '__module__', None) or type(cls).__module__
        if not module.startswith('vlmtune.') and module not in modules:
            modules.append(module)
    return modules


def read_spec(folder) -> ModelSpec:
    path = Path(folder) / SPEC_FILE
    data = read_json(path, 'a vlmtune folder has vlmtune_model.json')
    for module in data.get('imports', []):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise CheckpointError(f'{path}: needs module {module!r} for its components ({exc}); put it on '
                                  f'PYTHONPATH') from None
    try:
        return ModelSpec.from_dict(data['spec'])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{path}: invalid spec ({exc})') from None


def read_state(folder) -> dict:
    state = read_state_dict(folder)
    if read_json(Path(folder) / SPEC_FILE).get('version', 1) < 2:
        state = {('llm.' + k[len(OLD_LLM_PREFIX):] if k.startswith(OLD_LLM_PREFIX) else k): v for k, v in state.items()}
    return state


def unsupported(spec: ModelSpec):
    return None


def to_layout(state: dict, spec: ModelSpec) -> dict:
    return dict(state)


def from_layout(state: dict, spec: ModelSpec) -> dict:
    return dict(state)


def part_of(key: str) -> str:
    return next((part for part in PARTS if key.startswith(part + '.')), 'other')


def describe(folder, spec: ModelSpec) -> dict:
    data = read_json(Path(folder) / SPEC_FILE)
    missing = [] if (Path(folder) / 'tokenizer_config.json').exists() else ['tokenizer_config.json']
    return {'torch_dtype': data.get('torch_dtype'), 'missing': missing}


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    write_json(staging / SPEC_FILE, {'format': NAME, 'version': VERSION, 'spec': spec.to_dict(),
                                     'imports': _user_modules(spec), 'torch_dtype': DTYPE_NAMES[dtype],
                                     'transformers_version': transformers.__version__})
    write_weights(state, staging, dtype, max_shard_bytes)
    save_tokenizer(tokenizer, staging, spec.build_template().chat_template(spec.system_message))
    (staging / 'README.md').write_text(
        '# vlmtune checkpoint\n\nA composition in vlmtune\'s own layout (`vlmtune_model.json` names its parts).\n'
        'Load it with `vlmtune.formats.load(folder)`, chat with `vlmtune chat FOLDER`, or export it with\n'
        '`vlmtune resave FOLDER OUT --to LAYOUT` to a layout its family\'s own tools read.\n', encoding='utf-8')


register_layout(sys.modules[__name__])
