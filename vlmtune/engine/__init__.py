"""Training engine: the model a recipe trains, data builders, hooks and CPU compatibility fixes."""
from . import compat

compat.apply()

from .data import build_train_dataset, vlm_collate  # noqa: E402
from .hooks import BenchmarkEvalHook, ChatProbeHook, ExpertLoadHook, LossCurveHook, ValidationHook  # noqa: E402
from .training_model import TrainingModel  # noqa: E402

VLTuneModel = TrainingModel  # the old name, so recipes copied before the rename still build

__all__ = ['TrainingModel', 'VLTuneModel', 'build_train_dataset', 'vlm_collate', 'BenchmarkEvalHook', 'ChatProbeHook', 'ExpertLoadHook',
           'LossCurveHook', 'ValidationHook']
