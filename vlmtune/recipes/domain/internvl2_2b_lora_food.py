# Domain LoRA: InternVL2-2B on FoodieQA-style dish recognition (the classic internvl_v2_internlm2_2b_lora_finetune_food tutorial).
# Data:
#   python -m datasets_proc foodieqa FoodieQA/sivqa_tidy.json --form open --image-root FoodieQA -o data/food.jsonl
#   vlmtune data check data/food.jsonl --images FoodieQA --model models/InternVL2-2B
# Train:  vlmtune copy-cfg internvl2_2b_lora_food my_food.py, set the paths, vlmtune train my_food.py --deepspeed zero2
from mmengine.config import read_base

from vlmtune.engine import ChatProbeHook, ValidationHook

with read_base():
    from .._base_.internvl_finetune import *

checkpoint = 'models/InternVL2-2B'
data_path = 'data/food_train.jsonl'
val_path = 'data/food_val.jsonl'
image_root = 'FoodieQA'
probe_image = 'FoodieQA/images/probe.jpg'

model.update(checkpoint=checkpoint, llm='lora', lora=dict(r=16, alpha=32, dropout=0.05))
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root)
train_cfg.update(max_epochs=3)
custom_hooks += [
    dict(type=ValidationHook, data_path=val_path, image_root=image_root, interval=100),
    dict(type=ChatProbeHook, probes=[dict(image=probe_image, question='图中的菜是什么？')], interval=100),
]
