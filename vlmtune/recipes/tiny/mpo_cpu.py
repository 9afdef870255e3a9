# MPO on a tiny model on a CPU (tests, the embedded default's preference stage): the official MPO loss (sigmoid 0.8 +
# bco_pair 0.2, rpo_alpha 1, beta 0.1) on preference pairs, LoRA on the LLM with the disabled adapters as the
# reference. Point it at a folder and pairs:
#   vlmtune train mpo_cpu --checkpoint DIR --data PAIRS.jsonl --images DIR
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

from vlmtune.engine import PreferenceModel, pair_collate

with read_base():
    from .._base_.tiny_cpu import *

checkpoint = 'work_dirs/tiny/base'
data_path = 'work_dirs/tiny/pairs.jsonl'
image_root = 'work_dirs/tiny/images'

model.update(type=PreferenceModel, checkpoint=checkpoint, vision_tower='frozen', connector='frozen', llm='lora',
             lora=dict(r=8, alpha=16, dropout=0.0), loss=dict(sigmoid=0.8, bco_pair=0.2), beta=0.1, rpo_alpha=1.0)
train_dataloader.update(batch_size=4, collate_fn=dict(type=pair_collate))
train_dataloader['dataset'].update(checkpoint=checkpoint, data_path=data_path, image_root=image_root, pairs=True)
optim_wrapper['optimizer'].update(lr=5e-4)
train_cfg = dict(type=TrainLoop, max_iters=20)
default_hooks['logger'].update(interval=1)
default_hooks['checkpoint'].update(interval=10)
randomness = dict(seed=0, deterministic=True)
