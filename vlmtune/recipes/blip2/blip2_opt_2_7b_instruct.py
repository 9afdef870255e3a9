# BLIP-2 OPT-2.7B instruction tuning (InstructBLIP's recipe on Salesforce/blip2-opt-2.7b): the Q-Former and its projection train, the ViT and OPT stay frozen; lr 1e-5, 1 epoch.
# The folder supplies the model; prompts are the released "Question: ... Answer:" form (template blip2). --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from .._base_.llava_finetune import *

checkpoint = 'models/blip2-opt-2.7b'
checkpoint_layouts = ('blip2_hf',)
data_path = 'data/train.jsonl'
image_root = 'data/images'
save_layout = 'blip2_hf'

model.update(checkpoint=checkpoint, parts=None, vision_tower='frozen', connector='full', llm='frozen',
             gradient_checkpointing=False)
train_dataloader['dataset'].update(checkpoint=checkpoint, parts=None, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-5)
