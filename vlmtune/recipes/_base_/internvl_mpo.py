# InternVL Mixed Preference Optimization as the official MPO scripts run it (internvl_chat/shell/internvl3.0/mpo):
# the MPO loss (sigmoid 0.8 + bco_pair 0.2, rpo_alpha 1, beta 0.1) on preference pairs, everything trained with a
# frozen copy of the checkpoint as the reference, max 12 tiles, one epoch, cosine with 3% warmup, weight decay 0.05,
# no length grouping, one pair per device. The official global batch is 256 (256 GPUs): raise accumulative_counts
# to approach it on fewer. A family base sets lr and max_length; a size sets its checkpoint and drop path.
from mmengine.config import read_base
from mmengine.dataset import InfiniteSampler

from vlmtune.engine import PreferenceModel, pair_collate

with read_base():
    from .internvl_finetune import *

model.update(type=PreferenceModel, vision_tower='full', connector='full', llm='full',
             loss=dict(sigmoid=0.8, bco_pair=0.2), beta=0.1, label_smoothing=0.0, rpo_alpha=1.0, reference='copy')
train_dataloader.update(batch_size=1, sampler=dict(type=InfiniteSampler, shuffle=True),
                        collate_fn=dict(type=pair_collate))
train_dataloader['dataset'].update(pairs=True, max_tiles=12)
optim_wrapper.update(accumulative_counts=16)
optim_wrapper['optimizer'].update(lr=2e-7, weight_decay=0.05)
