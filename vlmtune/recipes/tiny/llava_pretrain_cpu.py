# Tiny LLaVA stage 1 on CPU (the two-stage test): a CLIP tower folder + a Llama folder + a fresh mlp2x_gelu
# projector; plain template, square images; the projector trains alone. Give the folders and data:
#   vlmtune train llava_pretrain_cpu --vision-tower DIR --llm DIR --data FILE --images DIR
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.llava_finetune import *

parts.update(vision_tower=dict(type='clip', pretrained='work_dirs/llava_tiny/vision_tower', select_layer=-2,
                               select_feature='patch'),
             llm=dict(type='llama', pretrained='work_dirs/llava_tiny/llm'),
             image_processor=dict(type='square', image_size=56), template=dict(type='plain'))
data_path = 'work_dirs/llava_tiny/captions.jsonl'
image_root = 'work_dirs/llava_tiny/images'

model.update(parts=parts, vision_tower='frozen', connector='full', llm='frozen', gradient_checkpointing=False, dtype='fp32')
train_dataloader.update(batch_size=8, num_workers=0)
train_dataloader['dataset'].update(parts=parts, data_path=data_path, image_root=image_root, max_length=256)
optim_wrapper['optimizer'].update(lr=2e-3)
train_cfg = dict(type=TrainLoop, max_iters=60)
default_hooks['logger'].update(interval=10)
default_hooks['checkpoint'].update(interval=60, max_keep_ckpts=1)
randomness = dict(seed=0, deterministic=False)
