"""Training engine: the model a recipe trains, data builders, hooks and CPU compatibility fixes.

The names below load on first use (PEP 562), with the CPU fixes (compat.py) applied first: listing or
copying recipes (engine/recipes.py) then answers without importing torch, mmengine and DeepSpeed."""
import importlib

EXPORTS = {'TrainingModel': 'training_model', 'build_train_dataset': 'data', 'vlm_collate': 'data',
           'PreferenceModel': 'preference_model', 'pair_collate': 'data',
           'BenchmarkEvalHook': 'hooks', 'ChatProbeHook': 'hooks', 'ExpertLoadHook': 'hooks',
           'LossCurveHook': 'hooks', 'ValidationHook': 'hooks'}
OLD_NAMES = {'VLTuneModel': 'TrainingModel'}  # recipes copied before the rename still build

__all__ = sorted(EXPORTS) + sorted(OLD_NAMES)


def __getattr__(name):
    if name not in EXPORTS and name not in OLD_NAMES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    from . import compat
    compat.apply()
    target = OLD_NAMES.get(name, name)
    value = getattr(importlib.import_module(f'.{EXPORTS[target]}', __name__), target)
    globals()[name] = value
    return value
