# Pretrain the embedded default's tiny base from random weights on the general shapes/colours task:
# every part trains (it plays the role of the released InternVL checkpoint). CPU, fp32.
#   vlmtune train recipes/tiny/pretrain_cpu.py --checkpoint INIT_DIR --data general_train.jsonl --images DIR
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'work_dirs/demo/init'
data_path = 'work_dirs/demo/general/train.jsonl'
image_root = 'work_dirs/demo/general/images'
lr = 1e-3

model.update(checkpoint=checkpoint, vit='full', projector='full', llm='full', gradient_checkpointing=False, dtype='fp32')
train_dataloader.update(batch_size=16, num_workers=0)
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root,
                                   max_length=384, max_tiles=1)
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(lr=lr, weight_decay=0.0)
param_scheduler[0].update(warmup_ratio=0.05)
train_cfg = dict(type=TrainLoop, max_iters=900)
default_hooks['logger'].update(interval=20)
default_hooks['checkpoint'].update(interval=900, max_keep_ckpts=1)
randomness = dict(seed=0, deterministic=False)
