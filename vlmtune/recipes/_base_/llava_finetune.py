# LLaVA-1.5 defaults (its scripts/v1_5): CLIP ViT-L/14-336 (penultimate layer, patch tokens) + mlp2x_gelu +
# a Vicuna/Llama LLM built from parts; cosine with 3% warmup, weight decay 0, max length 2048, gradient
# checkpointing, bf16 where the GPU has it. Batches are per device for 8 GPUs (set accumulative_counts
# to 8 / GPUs to keep the global batch). A recipe states its stage (template, processor, what trains, lr),
# then hands `parts` to both the model and the dataset (a base's variables reach a recipe as copies).
from mmengine.config import read_base
from mmengine.dataset import InfiniteSampler

from vlmtune.engine import TrainingModel, build_train_dataset, vlm_collate

with read_base():
    from .runtime import *
    from .schedule import *

data_path = None           # conversation JSONL (datasets_proc llava converts LLaVA JSON / LCS-558K captions)
image_root = None
max_length = 2048
parts = dict(vision_tower=dict(type='clip', pretrained='models/clip-vit-large-patch14-336', select_layer=-2,
                               select_feature='patch'),
             connector=dict(type='mlp2x_gelu'),
             llm=dict(type='llama', pretrained='models/vicuna-7b-v1.5'),
             image_processor=dict(type='pad', image_size=336),
             template=dict(type='vicuna_v1'))
save_layout = 'llava_hf'   # what `vlmtune convert` writes (transformers' LlavaForConditionalGeneration)
# A whole checkpoint (--checkpoint) replaces the parts: the folders this recipe's settings are written for.
checkpoint_layouts = ('llava_hf', 'llava_next_hf', 'blip2_hf', 'composite', 'vlmtune')

model = dict(type=TrainingModel, checkpoint=None, parts=parts, vision_tower='frozen', connector='full', llm='full',
             lora=dict(r=128, alpha=256, dropout=0.05), quantization=None, dtype='auto',
             attn_implementation='auto', gradient_checkpointing=True)
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=False,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=vlm_collate),
    dataset=dict(type=build_train_dataset, checkpoint=None, parts=parts, data_path=data_path, image_root=image_root,
                 max_length=max_length, packing=False, jpeg_augment=False))
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(weight_decay=0.0)
