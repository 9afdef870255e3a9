# Tiny MoE-tuning on CPU (stage 3, for tests): the LLM upcycled, only experts and routers train.
# `lora_cpu`'s setup, 4 experts, top-2, every other layer; the expert-load report runs on the training data.
#   vlmtune train moe_cpu --checkpoint DIR --data FILE --images DIR [--deepspeed zero2]
from mmengine.config import read_base

with read_base():
    from .lora_cpu import *
    from .._base_.moe_llava import ExpertLoadHook, moe_spec

model.update(spec=moe_spec, connector='frozen', llm='moe')
train_dataloader['dataset'].update(spec=moe_spec)
custom_hooks = custom_hooks + [dict(type=ExpertLoadHook, max_samples=8)]  # on the first training samples
