# Domain LoRA on a released BLIP-2 OPT-2.7B: LoRA r 16 / alpha 32 on OPT (lr 1e-4) with the Q-Former trained at 1e-5, ViT frozen, 1 epoch.
# The folder supplies the whole model (EVA ViT-g, 32 queries, OPT, the "Question: ... Answer:" prompt); --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from ..blip2.blip2_opt_2_7b_instruct import *

data_path = 'data/food_train.jsonl'
image_root = 'FoodieQA'

model.update(connector='full', llm='lora', lora=dict(r=16, alpha=32, dropout=0.05))
train_dataloader['dataset'].update(data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-4)
optim_wrapper.update(paramwise_cfg=dict(custom_keys={'connector': dict(lr_mult=0.1)}))  # Q-Former 1e-5
