# TinyLLaVA finetuning with the vision tower `partially-tune` from layer 10 (partial:10); LLM and connector full.
# Blocks 10.. of the SigLIP encoder train; its embeddings, other blocks and post-norm stay frozen.
from mmengine.config import read_base

with read_base():
    from .tinyllava_qwen2_finetune import *

model.update(vision_tower='partial:10')
