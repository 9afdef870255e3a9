"""Layout `vlmtune`: any composition, lossless. `vlmtune_model.json` (the spec, with the modules a
user's own components live in), safetensors under the package's own names, tokenizer files with a
chat_template. vlmtune reloads it; official tools do not (use a family layout for those)."""
import importlib
from pathlib import Path

import transformers

from ..model.spec import COMPONENTS, ModelSpec
from .common import DTYPE_NAMES, CheckpointError, read_json, read_state_dict, write_json, write_weights
from .tokenizers import load_tokenizer, save_tokenizer  # noqa: F401  (load_tokenizer is this layout's loader)

NAME = 'vlmtune'
SPEC_FILE = 'vlmtune_model.json'
PARTS = ('vision_tower', 'connector', 'language_model')


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
    return read_state_dict(folder)


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
    write_json(staging / SPEC_FILE, {'format': NAME, 'version': 1, 'spec': spec.to_dict(),
                                     'imports': _user_modules(spec), 'torch_dtype': DTYPE_NAMES[dtype],
                                     'transformers_version': transformers.__version__})
    write_weights(state, staging, dtype, max_shard_bytes)
    save_tokenizer(tokenizer, staging, spec.build_template().chat_template(spec.system_message))
    (staging / 'README.md').write_text(
        '# vlmtune checkpoint\n\nA composition in vlmtune\'s own layout (`vlmtune_model.json` names its parts).\n'
        'Load it with `vlmtune.formats.load(folder)`, chat with `vlmtune chat FOLDER`, or export it with\n'
        '`vlmtune resave FOLDER OUT --to LAYOUT` to a layout its family\'s own tools read.\n', encoding='utf-8')
