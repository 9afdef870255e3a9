# MoE-LLaVA's MoE-tuning (its scripts/v1/*/finetune_moe.sh): stage 3 starts from the stage-2 model, upcycles
# every other LLM layer from 0 into 4 experts (copies of the FFN) + a router, top-2 gating with capacity
# factor 1.5 (tokens past capacity dropped in training; inference is dropless), balance loss x 0.01 summed
# over MoE layers (logged as moe_aux_loss). Only experts and routers train; lr 2e-5, global batch 128,
# ZeRO-2. A recipe sets `checkpoint` (the stage-2 folder) and the data, then hands them to model and dataset.
from mmengine.config import read_base

from vlmtune.engine import ExpertLoadHook

with read_base():
    from .llava_finetune import *

checkpoint = None        # the stage-2 model folder (`vlmtune convert` of stage 2, e.g. llava_hf)
moe = dict(mode='sparse', num_experts=4, top_k=2, capacity_factor=1.5, router_aux_loss_coef=0.01)
moe_spec = dict(llm=dict(moe=moe))
data_path = 'data/llava_v1_5_mix665k.jsonl'
image_root = 'data'

# The stage-2 folder holds the whole model (the base's parts are not used); moe_spec upcycles its LLM.
model = dict(model, checkpoint=checkpoint, parts=None, spec=moe_spec, vision_tower='frozen', connector='frozen',
             llm='moe')
train_dataloader['dataset'] = dict(train_dataloader['dataset'], checkpoint=checkpoint, parts=None, spec=moe_spec,
                                   data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=2e-5)
save_layout = None       # the stage-2 folder's layout, with the native MoE LLM (Qwen3-MoE, Qwen2-MoE, Mixtral)
custom_hooks = custom_hooks + [dict(type=ExpertLoadHook)]  # expert load on the first 64 training samples
