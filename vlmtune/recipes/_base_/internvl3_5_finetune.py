# InternVL3.5 fine-tuning: the InternVL defaults with the official 3.5 SFT scripts' loss reduction, square
# averaging (each sample's tokens weighted 1/sqrt(its supervised tokens); data/loss_weights.py).
from mmengine.config import read_base

with read_base():
    from .internvl_finetune import *

train_dataloader['collate_fn'].update(loss_reduction='square')
