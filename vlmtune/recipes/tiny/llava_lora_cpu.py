# Tiny LLaVA stage 2 on CPU (the two-stage test): stage 1's projector (from its work dir) trains on with
# LoRA on the Llama LLM; vicuna_v1 template, pad. Saved as llava_hf by `vlmtune convert`.
#   vlmtune train llava_lora_cpu --vision-tower DIR --llm DIR --data FILE --images DIR \
#       --cfg-options model.spec.connector.pretrained=WORK1 train_dataloader.dataset.spec.connector.pretrained=WORK1
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.llava_finetune import *

parts.update(vision_tower=dict(type='clip', pretrained='work_dirs/llava_tiny/vision_tower', select_layer=-2,
                               select_feature='patch'),
             connector=dict(type='mlp2x_gelu', pretrained='work_dirs/llava_pretrain_cpu'),
             llm=dict(type='llama', pretrained='work_dirs/llava_tiny/llm'),
             image_processor=dict(type='pad', image_size=56), template=dict(type='vicuna_v1'))
data_path = 'work_dirs/llava_tiny/train.jsonl'
image_root = 'work_dirs/llava_tiny/images'

model.update(spec=parts, vit='frozen', projector='full', llm='lora', lora=dict(r=8, alpha=16, dropout=0.0),
             gradient_checkpointing=False, dtype='fp32')
train_dataloader.update(batch_size=8, num_workers=0)
train_dataloader['dataset'].update(spec=parts, data_path=data_path, image_root=image_root, max_length=256)
optim_wrapper['optimizer'].update(lr=2e-3)
train_cfg = dict(type=TrainLoop, max_iters=60)
default_hooks['logger'].update(interval=10)
default_hooks['checkpoint'].update(interval=60, max_keep_ckpts=1)
randomness = dict(seed=0, deterministic=False)
