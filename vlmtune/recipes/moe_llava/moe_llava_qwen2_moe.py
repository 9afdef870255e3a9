# MoE-LLaVA stage 3 with Qwen2-1.5B-Instruct: MoE-tuning of the stage-2 folder (4 experts, top-2); --deepspeed zero2.
# Every other layer upcycled; experts + routers train. `vlmtune convert` writes it as qwen2_moe (Qwen2-MoE, shared expert zeroed).
from mmengine.config import read_base

with read_base():
    from .._base_.moe_llava import *

checkpoint = 'models/moe_llava_qwen2_stage2'  # `vlmtune convert moe_llava_qwen2_finetune ...` output
model.update(checkpoint=checkpoint)
train_dataloader['dataset'].update(checkpoint=checkpoint)
