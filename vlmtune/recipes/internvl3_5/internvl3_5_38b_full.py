# InternVL3_5-38B (InternViT-6B + Qwen3-32B, template internvl2_5): full fine-tuning of connector and LLM; vision tower frozen. Run with --deepspeed zero3 (zero3_offload if short of memory).
# Everything else as the LoRA recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_5_38b_lora import *

model.update(connector='full', llm='full')
