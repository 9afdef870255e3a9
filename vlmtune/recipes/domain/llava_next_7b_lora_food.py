# Domain LoRA on a released LLaVA-NeXT-7B (llava-hf/llava-v1.6-vicuna-7b-hf): LLaVA's task-LoRA settings (r 128 / alpha 256, lr 2e-4, projector and image_newline at 2e-5).
# The folder supplies the whole model (AnyRes pinpoints, spatial_unpad, its chat template); --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from ..llava_next.llava_next_7b_lora import *

checkpoint = 'models/llava-v1.6-vicuna-7b-hf'
checkpoint_layouts = ('llava_next_hf',)
data_path = 'data/food_train.jsonl'
image_root = 'FoodieQA'

model.update(checkpoint=checkpoint, parts=None)
train_dataloader['dataset'].update(checkpoint=checkpoint, parts=None, data_path=data_path, image_root=image_root)
