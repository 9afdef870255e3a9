# MoE-LLaVA stage 2 with Qwen2-1.5B-Instruct: projector + the whole dense LLM on instructions; lr 2e-5, --deepspeed zero3.
# Stage 1's projector, vision tower frozen; the LLM's own chat template, pad; global batch 128. Convert it
# (`vlmtune convert`) to start stage 3 from.
from mmengine.config import read_base

with read_base():
    from ..llava.llava15_7b_finetune import *

parts['llm'] = dict(type='qwen2', pretrained='models/Qwen2-1.5B-Instruct')
parts['connector'].update(pretrained='work_dirs/moe_llava_qwen2_pretrain')
parts.update(template=dict(type='hf_chat_template'))
model.update(parts=parts)
train_dataloader['dataset'].update(parts=parts)
