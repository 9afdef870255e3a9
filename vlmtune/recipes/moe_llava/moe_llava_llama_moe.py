# MoE-LLaVA stage 3 with TinyLlama-1.1B-Chat-v1.0: MoE-tuning of the stage-2 folder (4 experts, top-2); --deepspeed zero2.
# Every other layer upcycled; experts + routers train. `vlmtune convert` writes it as mixtral (Mixtral; dense layers as identical experts).
from mmengine.config import read_base

with read_base():
    from .._base_.moe_llava import *

checkpoint = 'models/moe_llava_llama_stage2'  # `vlmtune convert moe_llava_llama_finetune ...` output
model.update(checkpoint=checkpoint)
train_dataloader['dataset'].update(checkpoint=checkpoint)
