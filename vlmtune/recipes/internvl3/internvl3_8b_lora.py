# InternVL3-8B (InternViT-300M + Qwen2.5-7B, template internvl2_5): LoRA (r16, alpha 32) on the LLM; vision tower and connector frozen. Run with --deepspeed zero2.
# The template, tiling and image size come from the checkpoint's config.json.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL3-8B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL3-8B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
