# InternVL2_5-26B (InternViT-6B + InternLM2.5-20B, template internvl2_5): MPO as the official scripts (sigmoid 0.8 + bco_pair 0.2, rpo_alpha 1, lr 1e-6, max_length 8192), everything trained. Run with --deepspeed zero3.
# Preference rows: {"image", "question", "chosen", "rejected"} (python -m datasets_proc pairs converts the peers').
from mmengine.config import read_base

with read_base():
    from .._base_.internvl2_5_mpo import *

checkpoint = 'models/InternVL2_5-26B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL2_5-26B
data_path = 'data/pairs.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint)
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
