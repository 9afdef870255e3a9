# InternVL3-14B (InternViT-300M + Qwen2.5-14B, template internvl2_5): QLoRA: LoRA on a 4-bit NF4 LLM (GPU only). Run with --deepspeed zero2.
# The template, tiling and image size come from the checkpoint's config.json.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL3-14B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL3-14B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora', quantization='nf4')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
