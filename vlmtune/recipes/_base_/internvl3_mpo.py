# internvl3 MPO: the InternVL MPO base with the lr and max_length of internvl_chat/shell/internvl3.0/mpo (lr 2e-7, max_seq_length 12288).
from mmengine.config import read_base

with read_base():
    from .internvl_mpo import *

max_length = 12288
train_dataloader['dataset'].update(max_length=max_length)
optim_wrapper['optimizer'].update(lr=2e-7)
