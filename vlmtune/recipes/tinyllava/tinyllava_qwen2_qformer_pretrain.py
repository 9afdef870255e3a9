# TinyLLaVA with its qformer connector (BERT-base-shaped Q-Former, 128 queries, random init) pretraining: the connector alone, lr 1e-3, --deepspeed zero3.
from mmengine.config import read_base

with read_base():
    from .tinyllava_qwen2_pretrain import *

parts.update(connector=dict(type='qformer', num_query_tokens=128))
save_layout = 'composite'
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
