# InternVL3_5-14B (InternViT-300M + Qwen3-14B, template internvl2_5): full fine-tuning of connector and LLM; vision tower frozen. Run with --deepspeed zero3 (zero3_offload if short of memory).
# Everything else as the LoRA recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_5_14b_lora import *

model.update(connector='full', llm='full')
