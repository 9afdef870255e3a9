# InternVL3-2B (InternViT-300M + Qwen2.5-1.5B, template internvl2_5): MPO with LoRA (r16, alpha 32) on the LLM, vision tower and connector frozen; the reference is the model with its adapters disabled (no second copy). Not an official setting: lr 10x the full run's. Run with --deepspeed zero2.
# Everything else as the MPO recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_2b_mpo import *

model.update(vision_tower='frozen', connector='frozen', llm='lora', lora=dict(r=16, alpha=32, dropout=0.05),
             reference='adapters')
optim_wrapper['optimizer'].update(lr=2e-06)
