"""Training engine: the mmengine model wrapper, data builders, hooks and CPU compatibility fixes."""
from . import compat

compat.apply()

from .data import build_train_dataset, vlm_collate  # noqa: E402
from .hooks import BenchmarkEvalHook, ChatProbeHook, ExpertLoadHook, LossCurveHook, ValidationHook  # noqa: E402
from .model import VLTuneModel  # noqa: E402

__all__ = ['VLTuneModel', 'build_train_dataset', 'vlm_collate', 'BenchmarkEvalHook', 'ChatProbeHook', 'ExpertLoadHook',
           'LossCurveHook', 'ValidationHook']
