# The embedded default's domain step: LoRA on the tiny base for procedurally drawn dishes
# (FoodieQA-style), run under DeepSpeed ZeRO-2 on CPU by `vlmtune demo`.
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'work_dirs/demo/base'
data_path = 'work_dirs/demo/domain/train.jsonl'
image_root = 'work_dirs/demo'
lr = 1e-3

model.update(checkpoint=checkpoint, vit='lora', projector='full', llm='lora', lora=dict(r=16, alpha=32, dropout=0.0),
             gradient_checkpointing=False, dtype='fp32')
train_dataloader.update(batch_size=16, num_workers=0)
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root,
                                   max_length=384, max_tiles=1)
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(lr=lr, weight_decay=0.0)
param_scheduler[0].update(warmup_ratio=0.05)
train_cfg = dict(type=TrainLoop, max_iters=300)
default_hooks['logger'].update(interval=20)
default_hooks['checkpoint'].update(interval=300, max_keep_ckpts=1)
randomness = dict(seed=0, deterministic=False)
