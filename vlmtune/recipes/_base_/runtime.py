# Runtime shared by every recipe: hooks, logging (text + tensorboard), checkpointing, seed.
from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, IterTimerHook, LoggerHook,
                            ParamSchedulerHook)
from mmengine.visualization import LocalVisBackend, TensorboardVisBackend, Visualizer

from vlmtune.engine import LossCurveHook

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=500, max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type=DistSamplerSeedHook),
)
custom_hooks = [dict(type=LossCurveHook)]
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))  # the package switches to gloo where CUDA is absent
# Plain DDP: device_ids=None works for a single-device module on GPU and on CPU alike.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, find_unused_parameters=False)
visualizer = dict(type=Visualizer, vis_backends=[dict(type=LocalVisBackend), dict(type=TensorboardVisBackend)])
log_processor = dict(by_epoch=False, window_size=1)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42, deterministic=False)
