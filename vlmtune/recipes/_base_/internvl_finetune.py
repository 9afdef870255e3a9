# InternVL fine-tuning defaults (the official LoRA script's): LoRA rank 16 / alpha 32 on the LLM,
# vision tower and connector frozen, max 6 tiles, max length 4096, global batch 16 (4 per device x 4 steps
# on one GPU; use accumulative_counts=2 on two GPUs), lr 4e-5. A recipe sets `checkpoint` and the
# data paths, then updates `model` and `train_dataloader['dataset']` with them.
from mmengine.config import read_base

from vlmtune.engine import TrainingModel, build_train_dataset, vlm_collate
from vlmtune.engine.sampler import LengthGroupedSampler

with read_base():
    from .runtime import *
    from .schedule import *

checkpoint = None          # an official InternVL folder (config.json + safetensors)
checkpoint_layouts = ('internvl', 'internvl_hf')  # the folders this recipe's settings are written for
data_path = None           # conversation JSONL (see datasets_proc / `vlmtune data check`)
image_root = None
max_length = 4096
max_tiles = 6

model = dict(type=TrainingModel, checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora',
             lora=dict(r=16, alpha=32, dropout=0.05), quantization=None, dtype='auto',
             attn_implementation='auto', gradient_checkpointing=True)
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=False,
    # infinite (no restart stall between epochs); similar lengths batched together (official group_by_length)
    sampler=dict(type=LengthGroupedSampler, shuffle=True),
    # the official 2nd_finetune scripts' (2 / 2.5 / 3): the plain token mean; 'sample' / 'square' as data/loss_weights.py
    collate_fn=dict(type=vlm_collate, loss_reduction='token'),
    dataset=dict(type=build_train_dataset, checkpoint=checkpoint, data_path=data_path, image_root=image_root,
                 max_length=max_length, max_tiles=max_tiles, packing=False, jpeg_augment=False))
