# AdamW, gradient clipping, linear warmup (3%) then cosine decay over the whole run.
from torch.optim import AdamW
from mmengine.optim import OptimWrapper
from xtuner.engine.runner import TrainLoop

from vlmtune.engine.schedule import WarmupCosineLR

lr = 4e-5
optim_wrapper = dict(type=OptimWrapper, accumulative_counts=4, clip_grad=dict(max_norm=1.0, error_if_nonfinite=False),
                     optimizer=dict(type=AdamW, lr=lr, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [dict(type=WarmupCosineLR, warmup_ratio=0.03, by_epoch=False)]  # end = the loop's length
train_cfg = dict(type=TrainLoop, max_epochs=1)
