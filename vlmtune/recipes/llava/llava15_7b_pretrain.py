# LLaVA-1.5-7B stage 1, feature alignment: the mlp2x_gelu projector only (fresh), on captions (LCS-558K shape)
# with the plain template and square images; lr 1e-3, global batch 256 (32 x 8 GPUs). Run with --deepspeed zero2.
from mmengine.config import read_base

with read_base():
    from .._base_.llava_finetune import *

parts['llm'].update(pretrained='models/vicuna-7b-v1.5')
parts.update(image_processor=dict(type='square', image_size=336), template=dict(type='plain'))
data_path = 'data/blip_laion_cc_sbu_558k.jsonl'
image_root = 'data/LLaVA-Pretrain/images'

model.update(parts=parts, vision_tower='frozen', connector='full', llm='frozen', gradient_checkpointing=False)
train_dataloader.update(batch_size=32)
train_dataloader['dataset'].update(parts=parts, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-3)
