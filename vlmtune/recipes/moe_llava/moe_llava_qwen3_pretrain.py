# MoE-LLaVA stage 1 with Qwen3-1.7B: the fresh mlp2x_gelu projector alone on captions; lr 1e-3, --deepspeed zero2.
# CLIP-L/14-336 + the LLM; LLaVA-PT 558K-shaped captions, plain template; global batch 256.
from mmengine.config import read_base

with read_base():
    from ..llava.llava15_7b_pretrain import *

parts['llm'] = dict(type='qwen3', pretrained='models/Qwen3-1.7B')
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
