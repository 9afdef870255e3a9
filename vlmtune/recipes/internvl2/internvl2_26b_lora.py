# InternVL2-26B (InternViT-6B + InternLM2-20B, template internlm2-chat): LoRA (r16, alpha 32) on the LLM; vision tower and connector frozen. Run with --deepspeed zero2.
# The template, tiling and image size come from the checkpoint's config.json.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL2-26B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL2-26B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
