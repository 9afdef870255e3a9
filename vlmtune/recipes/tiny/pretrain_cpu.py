# Pretrain the embedded default's tiny base from random weights on the general shape colour/position task:
# every part trains (it plays the role of the released InternVL checkpoint). CPU, fp32.
#   vlmtune train pretrain_cpu --checkpoint INIT_DIR --data general_train.jsonl --images DIR
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.tiny_cpu import *

checkpoint = 'work_dirs/demo/init'
data_path = 'work_dirs/demo/general/train/data.jsonl'
image_root = 'work_dirs/demo/general/train/images'

model.update(checkpoint=checkpoint, vision_tower='full', connector='full', llm='full')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-3)
train_cfg = dict(type=TrainLoop, max_iters=900)
default_hooks['checkpoint'].update(interval=900)
