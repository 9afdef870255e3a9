# MoE-tuning (MoE-LLaVA stage 3) of an InternVL2.5 / 3 / 3.5 folder: 4 experts, top-2; --deepspeed zero2.
# Every other LLM layer upcycled into experts + a router; experts and routers train. Qwen2 LLMs (InternVL2.5-1B/4B, InternVL3) export as
# Qwen2-MoE, Qwen3 ones (InternVL3.5) as Qwen3-MoE, inside the internvl layout; InternLM2 ones have no native MoE
# and save as the vlmtune layout (convert --to vlmtune). Run with --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from .._base_.internvl_finetune import *
    from .._base_.moe_llava import ExpertLoadHook, moe_spec

checkpoint = 'models/InternVL3-2B'  # any official InternVL folder, e.g. OpenGVLab/InternVL3-2B
data_path = 'data/train.jsonl'
image_root = 'data/images'

model.update(checkpoint=checkpoint, spec=moe_spec, vision_tower='frozen', connector='frozen', llm='moe')
train_dataloader['dataset'].update(checkpoint=checkpoint, spec=moe_spec, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=2e-5)
custom_hooks = custom_hooks + [dict(type=ExpertLoadHook)]  # expert load on the first 64 training samples
