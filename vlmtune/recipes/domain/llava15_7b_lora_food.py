# Domain LoRA on a released LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf): LLaVA's own finetune_task_lora settings, r 128 / alpha 256 on the LLM (lr 2e-4), the projector trained at 2e-5, 1 epoch.
# The folder supplies the whole model (CLIP-336, mlp2x_gelu, Vicuna, its chat template, pad); --deepspeed zero2.
#   vlmtune copy-cfg llava15_7b_lora_food my_food.py, set the paths, vlmtune train my_food.py --deepspeed zero2
from mmengine.config import read_base

with read_base():
    from ..llava.llava15_7b_lora import *

checkpoint = 'models/llava-1.5-7b-hf'
checkpoint_layouts = ('llava_hf',)
data_path = 'data/food_train.jsonl'
image_root = 'FoodieQA'

model.update(checkpoint=checkpoint, parts=None)
train_dataloader['dataset'].update(checkpoint=checkpoint, parts=None, data_path=data_path, image_root=image_root)
save_layout = 'llava_hf'
