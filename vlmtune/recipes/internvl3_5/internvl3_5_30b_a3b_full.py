# InternVL3_5-30B-A3B (InternViT-300M + Qwen3-30B-A3B MoE with 128 experts, top 8, template internvl2_5): full fine-tuning of connector and LLM; vision tower frozen. Run with --deepspeed zero3 (zero3_offload if short of memory).
# Everything else as the LoRA recipe.
from mmengine.config import read_base

with read_base():
    from .internvl3_5_30b_a3b_lora import *

model.update(connector='full', llm='full')
