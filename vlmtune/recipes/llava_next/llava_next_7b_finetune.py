# LLaVA-NeXT-7B stage 2 (full LLM): LLaVA-1.5's recipe with AnyRes tiling (1.6 pinpoints) and spatial_unpad.
# The merge adds a learned image_newline; saved as transformers' LlavaNextForConditionalGeneration.
from mmengine.config import read_base

with read_base():
    from ..llava.llava15_7b_finetune import *

parts.update(image_processor=dict(type='anyres', image_size=336))
save_layout = 'llava_next_hf'
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
