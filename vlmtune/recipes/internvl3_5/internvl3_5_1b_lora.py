# InternVL3_5-1B (InternViT-300M + Qwen3-0.6B, template internvl2_5): LoRA (r16, alpha 32) on the LLM; vision tower and connector frozen. Run with --deepspeed zero2.
# The template, tiling and image size come from the checkpoint's config.json; transformers 4.48 runs its
# Qwen3 LLM through vlmtune's own component (transformers has it from 4.51).
from mmengine.config import read_base

with read_base():
    from .._base_.internvl3_5_finetune import *

checkpoint = 'models/InternVL3_5-1B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL3_5-1B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
