# InternVL2-4B (InternViT-300M + Phi-3-mini, template phi3-chat): full fine-tuning of connector and LLM; vision tower frozen. Run with --deepspeed zero3 (zero3_offload if short of memory).
# The template, tiling and image size come from the checkpoint's config.json.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL2-4B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL2-4B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, vision_tower='frozen', connector='full', llm='full')
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
