# LLaVA-1.5-13B stage 2 (LoRA): the 7B recipe with Vicuna-13B; same data, schedule and batches.
from mmengine.config import read_base

with read_base():
    from .llava15_7b_lora import *

parts['llm'].update(pretrained='models/vicuna-13b-v1.5')
parts['connector'].update(pretrained='work_dirs/llava15_13b_pretrain')
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
