# Build from parts and train the connector only (InternVL's / LLaVA's first stage), tiny and on CPU:
# an InternViT folder + a transformers LLM folder + a freshly initialised pixel-shuffle MLP. Set the
# folders with --cfg-options model.parts.vision_tower.pretrained=DIR model.parts.llm.pretrained=DIR
# (and the same under train_dataloader.dataset.parts); the converted folder is the internvl layout.
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from .._base_.tiny_cpu import *

parts = dict(vision_tower=dict(type='intern_vit', pretrained='work_dirs/parts/vision_tower'),
             connector=dict(type='pixel_shuffle_mlp', downsample_ratio=0.5, ps_version='v2'),
             llm=dict(type='qwen2', pretrained='work_dirs/parts/llm'),
             image_processor=dict(type='internvl_dynamic', image_size=56, max_tiles=1),
             template=dict(type='internvl2_5'))
data_path = 'work_dirs/parts/train.jsonl'
image_root = 'work_dirs/parts/images'

model.update(checkpoint=None, parts=parts, vision_tower='frozen', connector='full', llm='frozen')
train_dataloader['dataset'].update(checkpoint=None, parts=parts, data_path=data_path, image_root=image_root)
optim_wrapper['optimizer'].update(lr=1e-3)
train_cfg = dict(type=TrainLoop, max_iters=20)
default_hooks['checkpoint'].update(interval=20)
