# TinyLLaVA Factory's defaults (its scripts/train and training_recipe/): SigLIP-so400m-384 (penultimate layer,
# `patch` = index 0 dropped, 728 tokens) + mlp2x_gelu + a small LLM (Qwen2-0.5B here), square images; cosine with
# 3% warmup, 1 epoch. Its per-component tune types map onto our per-part modes: frozen / full / lora, and
# `partially-tune` from layer K = partial:K. A recipe states its stage and hands `parts` to model and dataset.
from mmengine.config import read_base

with read_base():
    from .llava_finetune import *

parts = dict(vision_tower=dict(type='siglip', pretrained='models/siglip-so400m-patch14-384', select_layer=-2,
                               select_feature='drop_first'),
             connector=dict(type='mlp2x_gelu'),
             llm=dict(type='qwen2', pretrained='models/Qwen2-0.5B'),
             image_processor=dict(type='square', image_size=384, crop=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
             template=dict(type='hf_chat_template'))
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
