# MoE-LLaVA stage 3 with Qwen3-1.7B: MoE-tuning of the stage-2 folder (4 experts, top-2); --deepspeed zero2.
# Every other layer upcycled; experts + routers train. `vlmtune convert` writes it as qwen3_moe (Qwen3-MoE).
from mmengine.config import read_base

with read_base():
    from .._base_.moe_llava import *

checkpoint = 'models/moe_llava_qwen3_stage2'  # `vlmtune convert moe_llava_qwen3_finetune ...` output
model.update(checkpoint=checkpoint)
train_dataloader['dataset'].update(checkpoint=checkpoint)
