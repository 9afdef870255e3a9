# InternVL3_5-1B (InternViT-300M + Qwen3-0.6B, template internvl2_5): MPO as the official scripts (sigmoid 0.8 + bco_pair 0.2, rpo_alpha 1, lr 2e-7, max_length 16384, drop path 0.0), everything trained. Run with --deepspeed zero3.
# Preference rows: {"image", "question", "chosen", "rejected"} (python -m datasets_proc pairs converts the peers').
from mmengine.config import read_base

with read_base():
    from .._base_.internvl3_5_mpo import *

checkpoint = 'models/InternVL3_5-1B'  # the official folder, e.g. downloaded from OpenGVLab/InternVL3_5-1B
data_path = 'data/pairs.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint)
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
spec = dict(vision_tower=dict(config=dict(drop_path_rate=0.0)))  # the official drop path for this size
model.update(spec=spec)
train_dataloader['dataset'].update(spec=spec)
