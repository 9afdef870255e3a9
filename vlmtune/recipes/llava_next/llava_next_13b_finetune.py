# LLaVA-NeXT-13B (full): as LLaVA-1.5's stage 2, with AnyRes tiling (the 1.6 grid pinpoints)
# and the spatial_unpad merge with a learned image_newline; saved as transformers' LlavaNextForConditionalGeneration.
from mmengine.config import read_base

with read_base():
    from .._base_.llava_finetune import *

parts['llm'].update(pretrained='models/vicuna-13b-v1.5')
parts.update(image_processor=dict(type='anyres', image_size=336))
parts['connector'].update(pretrained='work_dirs/llava15_13b_pretrain')
data_path = 'data/llava_v1_5_mix665k.jsonl'
image_root = 'data'
save_layout = 'llava_next_hf'

model.update(spec=parts, vit='frozen', projector='full', llm='full')
train_dataloader['dataset'].update(spec=parts, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=2e-5)
