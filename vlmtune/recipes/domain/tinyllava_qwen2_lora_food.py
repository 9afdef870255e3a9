# Domain LoRA on a whole TinyLLaVA model (SigLIP + mlp2x_gelu + Qwen2-0.5B as a composite folder, e.g. `vlmtune convert tinyllava_qwen2_finetune ...`): TinyLLaVA's lora recipe, r 128 / alpha 256, lr 2e-4.
# The folder supplies the whole model (tower read-out, connector, LLM, square images, its template); --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from ..tinyllava.tinyllava_qwen2_lora import *

checkpoint = 'models/tinyllava-qwen2-0.5b-siglip'
checkpoint_layouts = ('composite',)
data_path = 'data/food_train.jsonl'
image_root = 'FoodieQA'

model.update(checkpoint=checkpoint, parts=None)
train_dataloader['dataset'].update(checkpoint=checkpoint, parts=None, data_path=data_path, image_root=image_root)
save_layout = 'composite'
