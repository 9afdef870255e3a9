# LLaVA-1.5-7B stage 2 with LoRA: r 128, alpha 256 on the LLM (lr 2e-4) + the projector from stage 1 (lr 2e-5);
# vicuna_v1 template, pad; global batch 128 (16 x 8 GPUs). Run with --deepspeed zero3.
from mmengine.config import read_base

with read_base():
    from .._base_.llava_finetune import *

parts['llm'].update(pretrained='models/vicuna-7b-v1.5')
parts['connector'].update(pretrained='work_dirs/llava15_7b_pretrain')
data_path = 'data/llava_v1_5_mix665k.jsonl'
image_root = 'data'

model.update(parts=parts, vision_tower='frozen', connector='full', llm='lora', lora=dict(r=128, alpha=256, dropout=0.05))
train_dataloader['dataset'].update(parts=parts, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=2e-4)
optim_wrapper.update(paramwise_cfg=dict(custom_keys={'connector': dict(lr_mult=0.1)}))  # projector lr 2e-5
