# DPO on a released LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf): the sigmoid loss (beta 0.1), LoRA r 128 / alpha 256 on the LLM with the projector frozen, so the reference is the model with its adapters disabled; lr 5e-6 as LLaMA-Factory's LoRA DPO example. Run with --deepspeed zero2.
# Preference rows: {"image", "question", "chosen", "rejected"} (python -m datasets_proc pairs converts the peers').
from mmengine.config import read_base

from vlmtune.engine import PreferenceModel, pair_collate

with read_base():
    from .llava15_7b_lora_food import *

data_path = 'data/pairs.jsonl'
model.update(type=PreferenceModel, connector='frozen', beta=0.1, rpo_alpha=None, reference='adapters')
model['loss'] = dict(sigmoid=1.0)
train_dataloader.update(collate_fn=dict(type=pair_collate))
train_dataloader['dataset'].update(data_path=data_path, pairs=True)
optim_wrapper['optimizer'].update(lr=5e-6)
optim_wrapper.pop('paramwise_cfg', None)  # no projector group: it is frozen here
