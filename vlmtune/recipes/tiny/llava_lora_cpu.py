# Tiny LLaVA stage 2 on CPU (the two-stage test): stage 1's projector (from its work dir) trains on with
# LoRA on the Llama LLM; vicuna_v1 template, pad. Saved as llava_hf by `vlmtune convert`.
#   vlmtune train llava_lora_cpu --vision-tower DIR --llm DIR --data FILE --images DIR \
#       --cfg-options model.parts.connector.pretrained=WORK1 train_dataloader.dataset.parts.connector.pretrained=WORK1
from mmengine.config import read_base

with read_base():
    from .llava_pretrain_cpu import *

parts['connector'].update(pretrained='work_dirs/llava_pretrain_cpu')
parts.update(image_processor=dict(type='pad', image_size=56), template=dict(type='vicuna_v1'))

model.update(parts=parts, llm='lora', lora=dict(r=8, alpha=16, dropout=0.0))
train_dataloader['dataset'].update(parts=parts, data_path='work_dirs/llava_tiny/train.jsonl')
