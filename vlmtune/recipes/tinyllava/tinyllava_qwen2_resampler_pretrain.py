# TinyLLaVA with its resampler connector (Perceiver: 128 latents, 3 layers, 8 heads x 64) pretraining: the connector alone, lr 1e-3, --deepspeed zero3.
from mmengine.config import read_base

with read_base():
    from .tinyllava_qwen2_pretrain import *

parts.update(connector=dict(type='resampler', num_queries=128, num_layers=3, heads=8, dim_head=64))
save_layout = 'composite'
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
