# internvl2_5 MPO: the InternVL MPO base with the lr and max_length of the InternVL2.5 MPO scripts (lr 1e-6, max_seq_length 8192; drop path as the checkpoint).
from mmengine.config import read_base

with read_base():
    from .internvl_mpo import *

max_length = 8192
train_dataloader['dataset'].update(max_length=max_length)
optim_wrapper['optimizer'].update(lr=1e-6)
