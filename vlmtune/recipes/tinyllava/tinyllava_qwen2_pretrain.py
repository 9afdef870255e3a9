# TinyLLaVA (SigLIP + mlp2x_gelu + Qwen2-0.5B) pretraining: the connector alone; lr 1e-3, global batch 256, --deepspeed zero3.
# TinyLLaVA's `pretrain` template is LLaVA's plain one (image, caption, newline).
from mmengine.config import read_base

with read_base():
    from .._base_.tinyllava import *

parts.update(template=dict(type='plain'))
data_path = 'data/blip_laion_cc_sbu_558k.jsonl'
image_root = 'data/LLaVA-Pretrain/images'
model.update(parts=parts, vision_tower='frozen', connector='full', llm='frozen', gradient_checkpointing=False)
train_dataloader.update(batch_size=32)
train_dataloader['dataset'].update(parts=parts, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-3)
