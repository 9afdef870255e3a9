# The embedded default's domain step: LoRA on the tiny base for procedurally drawn dishes
# (FoodieQA-style), run under DeepSpeed ZeRO-2 on CPU by `vlmtune demo`.
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.tiny_cpu import *

checkpoint = 'work_dirs/demo/base'
meta = 'work_dirs/demo/domain/meta.json'  # the dishes beside the general task at repeat_time 0.3 (`vlmtune demo` writes it)

model.update(checkpoint=checkpoint, vision_tower='full', connector='full', llm='lora', lora=dict(r=16, alpha=32, dropout=0.0))
train_dataloader['dataset'].update(checkpoint=checkpoint, meta=meta, data_path=None, image_root=None)
optim_wrapper['optimizer'].update(lr=1e-3)
train_cfg = dict(type=TrainLoop, max_iters=500)
default_hooks['checkpoint'].update(interval=500)
