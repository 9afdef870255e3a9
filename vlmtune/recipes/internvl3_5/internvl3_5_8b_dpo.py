# InternVL3_5-8B (InternViT-300M + Qwen3-8B, template internvl2_5): DPO (the sigmoid loss alone, beta 0.1, no NLL term), everything trained. Run with --deepspeed zero3.
# Everything else as the MPO recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_5_8b_mpo import *

model['loss'] = dict(sigmoid=1.0)  # assigned, not merged: the MPO terms go
model.update(rpo_alpha=None)
