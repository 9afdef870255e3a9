# InternVL2-1B (InternViT-300M + Qwen2-0.5B, template Hermes-2): full fine-tuning of connector and LLM; vision tower frozen. Run with --deepspeed zero3 (zero3_offload if short of memory).
# The template, tiling and image size come from the checkpoint's config.json.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL2-1B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL2-1B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='full', llm='full')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
