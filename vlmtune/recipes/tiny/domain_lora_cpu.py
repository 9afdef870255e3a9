# The embedded default's domain step: LoRA on the tiny base for procedurally drawn dishes
# (FoodieQA-style), run under DeepSpeed ZeRO-2 on CPU by `vlmtune demo`.
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.tiny_cpu import *

checkpoint = 'work_dirs/demo/base'
data_path = 'work_dirs/demo/domain/train.jsonl'
image_root = 'work_dirs/demo'

model.update(checkpoint=checkpoint, vision_tower='full', connector='full', llm='lora', lora=dict(r=16, alpha=32, dropout=0.0))
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-3)
train_cfg = dict(type=TrainLoop, max_iters=500)
default_hooks['checkpoint'].update(interval=500)
