# TinyLLaVA finetuning, `common` recipe: LLM full + connector full (from pretraining), ViT frozen; lr 2e-5, --deepspeed zero3.
from mmengine.config import read_base

with read_base():
    from .._base_.tinyllava import *

parts['connector'].update(pretrained='work_dirs/tinyllava_qwen2_pretrain')
model.update(spec=parts, vit='frozen', projector='full', llm='full')
train_dataloader['dataset'].update(spec=parts)
optim_wrapper['optimizer'].update(lr=2e-5)
