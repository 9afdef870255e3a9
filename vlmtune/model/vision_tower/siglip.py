"""SigLIP ViT (e.g. so400m-patch14-384, LLaVA-NeXT / TinyLLaVA / MoE-LLaVA) as a vision tower, on
transformers' SiglipVisionModel.

settings: {'config': SiglipVisionConfig fields (or a SiglipModel config.json; parts take its
vision_config), 'select_layer': -2, 'select_feature': 'patch' | 'drop_first',
'interpolate_pos_encoding': False}. SigLIP has no CLS token: `patch` keeps every patch (729 at
384 px, patch 14; llava-hf's 'full'); `drop_first` drops token 0 anyway (728), which is what
TinyLLaVA's `patch` and llava-hf's 'default' do to SigLIP.

The attention-pooling head is built when the config asks for it (`vision_use_head`, transformers'
default), though LLaVA-style features never reach it: a folder's weights then round-trip whole and
a llava-hf folder written from the tower loads with no missing keys.
"""
from transformers import SiglipVisionConfig, SiglipVisionModel
from transformers.models.siglip.modeling_siglip import SiglipPreTrainedModel

from . import register
from ._transformers_vit import TransformersViT


@register('siglip')
class SigLIPTower(TransformersViT):
    name = 'SigLIP'
    model_class, config_class = SiglipVisionModel, SiglipVisionConfig
    RELEASED_SIZE, RELEASE_FIELDS = 384, dict(hidden_act='gelu_pytorch_tanh', layer_norm_eps=1e-6)
    FEATURES = {'patch': 0, 'drop_first': 1}
    PREFIX_TOKENS = 0
    _init_weights = SiglipPreTrainedModel._init_weights  # per module; reads only self.config
