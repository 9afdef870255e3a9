# MoE-LLaVA stage 1 with TinyLlama-1.1B-Chat-v1.0: the fresh mlp2x_gelu projector alone on captions; lr 1e-3, --deepspeed zero2.
# CLIP-L/14-336 + the LLM; LLaVA-PT 558K-shaped captions, plain template; global batch 256.
from mmengine.config import read_base

with read_base():
    from ..llava.llava15_7b_pretrain import *

parts['llm'] = dict(type='llama', pretrained='models/TinyLlama-1.1B-Chat-v1.0')
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
