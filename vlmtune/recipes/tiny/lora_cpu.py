# A CPU recipe on a tiny model, for tests and the embedded default. Point it at a folder and data:
#   vlmtune train lora_cpu --checkpoint DIR --data FILE --images DIR [--deepspeed zero2]
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'work_dirs/tiny/base'
data_path = 'work_dirs/tiny/train.jsonl'
image_root = 'work_dirs/tiny/images'
lr = 2e-3

model.update(checkpoint=checkpoint, connector='full', lora=dict(r=8, alpha=16, dropout=0.0),
             gradient_checkpointing=False, dtype='fp32')
train_dataloader.update(batch_size=4, num_workers=0)
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root,
                                   max_length=512, max_tiles=2)
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(lr=lr)
train_cfg = dict(type=TrainLoop, max_iters=20)
default_hooks['logger'].update(interval=1)
default_hooks['checkpoint'].update(interval=5)
randomness = dict(seed=0, deterministic=True)
