"""BLIP-2's vision encoder (EVA ViT-g/14 in the releases) as a vision tower, on transformers' own
Blip2VisionModel, under Blip2ForConditionalGeneration's names (`vision_model.*`).

BLIP-2 reads the encoder's last_hidden_state: every token (CLS included, 257 at 224 px, patch 14)
after the final `post_layernorm`, so the defaults are select_layer -1, select_feature `cls_patch` and
post_layernorm on. settings: {'config': Blip2VisionConfig fields, 'select_layer', 'select_feature',
'post_layernorm'}.
"""
import torch
from transformers import Blip2VisionConfig, Blip2VisionModel
from transformers.models.blip_2.modeling_blip_2 import Blip2PreTrainedModel

from . import register
from ._transformers_vit import TransformersViT


@register('blip2_vision')
class Blip2VisionTower(TransformersViT):
    name = 'BLIP-2'
    model_class, config_class = Blip2VisionModel, Blip2VisionConfig
    FEATURES = {'cls_patch': 0, 'patch': 1}
    PREFIX_TOKENS = 1
    DEFAULT_LAYER, DEFAULT_FEATURE = -1, 'cls_patch'
    RELEASED_SIZE, RELEASE_FIELDS = 224, dict(hidden_act='gelu', layer_norm_eps=1e-6, qkv_bias=True)  # EVA ViT-g
    lora_targets = ['self_attn.qkv', 'self_attn.projection', 'mlp.fc1', 'mlp.fc2']
    _init_weights = Blip2PreTrainedModel._init_weights  # per module; reads only self.config

    def __init__(self, config: dict, select_layer: int = -1, select_feature: str = 'cls_patch',
                 post_layernorm: bool = True, interpolate_pos_encoding: bool = False, init_weights: bool = True):
        super().__init__(config, select_layer, select_feature, interpolate_pos_encoding, init_weights)
        self.post_layernorm = post_layernorm

    @classmethod
    def build_vision_model(cls, config):
        return Blip2VisionModel(config)  # the model is itself Blip2's `vision_model`

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = super().forward(pixel_values)
        return self.vision_model.post_layernorm(features) if self.post_layernorm else features
