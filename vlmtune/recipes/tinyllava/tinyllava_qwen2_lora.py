# TinyLLaVA finetuning, `lora` recipe: LoRA r128 / alpha 256 on the LLM + the connector full; lr 2e-4, --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from .tinyllava_qwen2_finetune import *

model.update(llm='lora', lora=dict(r=128, alpha=256, dropout=0.05))
optim_wrapper['optimizer'].update(lr=2e-4)
