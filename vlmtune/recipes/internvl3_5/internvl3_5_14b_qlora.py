# InternVL3_5-14B (InternViT-300M + Qwen3-14B, template internvl2_5): QLoRA: LoRA on a 4-bit NF4 LLM (GPU only). Run with --deepspeed zero2.
# Everything else as the LoRA recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_5_14b_lora import *

model.update(quantization='nf4')
