"""CLIP ViT (LLaVA-1.5's CLIP ViT-L/14-336) as a vision tower, on transformers' CLIPVisionModel.

settings: {'config': CLIPVisionConfig fields (or a CLIPModel config.json; parts take its
vision_config), 'select_layer': -2, 'select_feature': 'patch' | 'cls_patch',
'interpolate_pos_encoding': False}. `patch` drops CLS (576 tokens at 336 px, patch 14);
`cls_patch` keeps it (577). Parameter names: `vision_model.*`, as in the released checkpoint.
"""
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import CLIPPreTrainedModel

from . import register
from ._transformers_vit import TransformersViT


@register('clip')
class CLIPTower(TransformersViT):
    name = 'CLIP'
    model_class, config_class = CLIPVisionModel, CLIPVisionConfig
    RELEASED_SIZE, RELEASE_FIELDS = 336, dict(hidden_act='quick_gelu', layer_norm_eps=1e-5)
    FEATURES = {'patch': 1, 'cls_patch': 0}
    PREFIX_TOKENS = 1
    _init_weights = CLIPPreTrainedModel._init_weights  # per module; reads only self.config

    def embed(self, pixel_values):
        # CLIP's encoder input (hidden_states[0]) is after pre_layrnorm.
        return self.vision_model.pre_layrnorm(super().embed(pixel_values))
