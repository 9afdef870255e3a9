# Shared settings of the tiny CPU recipes (embedded default): fp32, no gradient checkpointing,
# 56px single-tile images, short sequences, batch 16, no weight decay. A tiny recipe sets its
# checkpoint, data, trainability, lr and length.
from mmengine.config import read_base
from mmengine.dataset import InfiniteSampler

with read_base():
    from .internvl_finetune import *

model.update(gradient_checkpointing=False, dtype='fp32')
# One 56 px tile per image: lengths differ by a few tokens, so grouping by length buys nothing here.
train_dataloader.update(batch_size=16, num_workers=0, sampler=dict(type=InfiniteSampler, shuffle=True))
train_dataloader['dataset'].update(max_length=384, max_tiles=1)
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(weight_decay=0.0)
param_scheduler[0].update(warmup_ratio=0.05)
default_hooks['logger'].update(interval=20)
default_hooks['checkpoint'].update(max_keep_ckpts=1)
randomness = dict(seed=0, deterministic=False)
