# internvl3_5 MPO: the InternVL MPO base with the lr and max_length of internvl_chat_gpt_oss/shell/internvl3_5_qwen3/*_mpo.sh (lr 2e-7, max_seq_length 16384, seed 42).
from mmengine.config import read_base

with read_base():
    from .internvl_mpo import *

max_length = 16384
train_dataloader['dataset'].update(max_length=max_length)
optim_wrapper['optimizer'].update(lr=2e-7)
randomness = dict(seed=42, deterministic=False)
