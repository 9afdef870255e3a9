# TinyLLaVA finetuning, `common` recipe: LLM full + connector full (from pretraining), vision tower frozen; lr 2e-5, --deepspeed zero3.
from mmengine.config import read_base

with read_base():
    from .._base_.tinyllava import *

parts['connector'].update(pretrained='work_dirs/tinyllava_qwen2_pretrain')
model.update(parts=parts, vision_tower='frozen', connector='full', llm='full')
train_dataloader['dataset'].update(parts=parts)
optim_wrapper['optimizer'].update(lr=2e-5)
