"""What the CLIP and SigLIP towers share: a transformers vision transformer (its own module, so its
parameter names are the released checkpoint's: `vision_model.embeddings...`,
`vision_model.encoder.layers.N...`) read out LLaVA's way (seed doc §1):

* `select_layer` indexes transformers' `hidden_states` tuple, which starts with the encoder input
  (0 = embeddings, -1 = last block, -2 = penultimate, LLaVA-1.5's value). Only the blocks up to
  that one run; the result equals `model(pixel_values, output_hidden_states=True).hidden_states[k]`.
* `select_feature` drops leading tokens; each tower names its choices in `FEATURES`.
* Nothing after the selected block is applied (CLIP's `post_layernorm`, SigLIP's pooling head):
  LLaVA's features never see them.

A tower with no trainable parameter runs without autograd (LLaVA's frozen, no-grad tower); once
any of its parameters trains (full, partial:K, LoRA), gradients flow as usual.
"""
import inspect
from contextlib import nullcontext
from functools import partial
from typing import Dict, List, Tuple

import torch
from torch import nn
try:
    from transformers.modeling_utils import no_init_weights
except ImportError:  # transformers 5 (this file also runs in composite folders under users' transformers)
    from transformers.initialization import no_init_weights

from ..checkpointing import checkpoint
from ..cpu_half import use_patch_conv


def mask_arguments(layer: nn.Module) -> dict:
    """No mask (None) for each mask the installed transformers' encoder layer names: 4.48's CLIP takes
    attention_mask and causal_attention_mask, transformers 5's Blip-2 none."""
    return {name: None for name in inspect.signature(layer.forward).parameters if name.endswith('mask')}


class TransformersViT(nn.Module):
    # Set by each tower.
    name = ''                       # shown by describe()
    model_class = None              # e.g. CLIPVisionModel; only its `vision_model` is kept
    config_class = None             # e.g. CLIPVisionConfig
    FEATURES: Dict[str, int] = {}   # select_feature -> leading tokens dropped
    PREFIX_TOKENS = 0               # tokens before the patch grid (CLIP's CLS)
    CONFIG_OVERRIDES: dict = {}     # fields forced on the config (SigLIP: no pooling head)
    SKIPPED_KEYS: Tuple[str, ...] = ()  # folder weights of modules the tower does not build
    DEFAULT_LAYER, DEFAULT_FEATURE = -2, 'patch'  # LLaVA's read-out (the constructor's defaults)
    RELEASED_SIZE = 224             # the released checkpoints' image size
    RELEASE_FIELDS: dict = {}       # the released family's shape-free config fields (activation, eps)
    lora_targets = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj',
                    'mlp.fc1', 'mlp.fc2']

    def __init__(self, config: dict, select_layer: int = -2, select_feature: str = 'patch',
                 interpolate_pos_encoding: bool = False, init_weights: bool = True):
        super().__init__()
        self.config = self.read_config(config)
        self.upto = self._blocks_to_run(select_layer, self.config.num_hidden_layers)
        self.select_layer, self.select_feature = select_layer, select_feature
        self.drop = self._dropped(select_feature)
        self.interpolate_pos_encoding = interpolate_pos_encoding
        self.gradient_checkpointing = False
        # transformers' own constructor and init; the wrapper is dropped, its `vision_model` kept.
        # (no_init_weights() without `_enable`, which later transformers removed.)
        with nullcontext() if init_weights else no_init_weights():
            self.vision_model = use_patch_conv(self.build_vision_model(self.config))
        self.layer_masks = mask_arguments(self.vision_model.encoder.layers[0])

    @classmethod
    def build_vision_model(cls, config) -> nn.Module:
        model = cls.model_class(config)
        return getattr(model, 'vision_model', model)  # transformers 5 drops the wrapper: the model is it

    # --- settings -----------------------------------------------------------------------------
    @classmethod
    def read_config(cls, config: dict):
        return cls.config_class.from_dict({**config, **cls.CONFIG_OVERRIDES})

    @staticmethod
    def _blocks_to_run(select_layer: int, layers: int) -> int:
        if not -(layers + 1) <= select_layer <= layers:
            raise ValueError(f'select_layer {select_layer}: hidden_states has {layers + 1} entries '
                             f'(0 = embeddings, {layers} or -1 = last block)')
        return select_layer if select_layer >= 0 else layers + 1 + select_layer

    @classmethod
    def _dropped(cls, select_feature: str) -> int:
        if select_feature not in cls.FEATURES:
            raise ValueError(f'{cls.name} select_feature {select_feature!r}: choose one of {list(cls.FEATURES)}')
        return cls.FEATURES[select_feature]

    @classmethod
    def tiny_config(cls, image_size: int = 0, width: int = 32, layers: int = 3, heads: int = 2,
                    patch_size: int = 14) -> dict:
        """A tiny tower's config fields with the release's shape-free ones (0: the released image size)."""
        return dict(hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers, num_attention_heads=heads,
                    image_size=image_size or cls.RELEASED_SIZE, patch_size=patch_size, num_channels=3,
                    **cls.RELEASE_FIELDS)

    @classmethod
    def tiny_settings(cls, image_size: int = 56) -> dict:
        return {'config': cls.tiny_config(image_size)}

    # --- folders as released (read by formats.part_folders) -----------------------------------------
    @classmethod
    def folder_config(cls, config: dict) -> dict:
        """A vision-only config.json as is; a two-tower one (CLIPModel / SiglipModel, as OpenAI and
        Google release them) -> its vision_config."""
        return dict(config['vision_config']) if 'vision_config' in config else config

    @classmethod
    def folder_state(cls, state: dict) -> dict:
        """The folder's vision weights under the tower's names (the same names): text tower,
        projections and modules the tower does not build are left out."""
        return {k: v for k, v in state.items()
                if k.startswith('vision_model.') and not k.startswith(cls.SKIPPED_KEYS)}

    # --- the tower interface ------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.config.hidden_size

    @classmethod
    def patch_grid(cls, settings: dict, image_size: int) -> Tuple[int, int]:
        cfg = cls.read_config(settings['config'])
        if image_size != cfg.image_size and not settings.get('interpolate_pos_encoding', False):
            raise ValueError(f'{cls.name} tower: tiles of {image_size} px, but its position embeddings are for '
                             f'{cfg.image_size} px; set the image processor to {cfg.image_size} or the tower\'s '
                             f'interpolate_pos_encoding=True')
        side = image_size // cfg.patch_size
        return side, side

    @classmethod
    def extra_tokens(cls, settings: dict) -> int:
        """Tokens beyond the patch grid: +1 with CLIP's CLS kept, -1 when a patch is dropped (SigLIP drop_first)."""
        return cls.PREFIX_TOKENS - cls._dropped(settings.get('select_feature', cls.DEFAULT_FEATURE))

    @classmethod
    def describe(cls, settings: dict) -> str:
        cfg = cls.read_config(settings['config'])
        side = cfg.image_size // cfg.patch_size
        return (f'{cls.name} ViT {cfg.hidden_size}w x {cfg.num_hidden_layers}L, patch {cfg.patch_size} @ '
                f'{cfg.image_size} px; layer {settings.get("select_layer", cls.DEFAULT_LAYER)}, '
                f'{settings.get("select_feature", cls.DEFAULT_FEATURE)} -> {side * side + cls.extra_tokens(settings)} '
                f'tokens')

    def blocks(self) -> List[nn.Module]:
        return list(self.vision_model.encoder.layers)

    def set_gradient_checkpointing(self, enable: bool = True):
        self.gradient_checkpointing = enable

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """hidden_states[0]: the encoder's input."""
        return self.vision_model.embeddings(pixel_values, interpolate_pos_encoding=self.interpolate_pos_encoding)

    def _layer(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        out = layer(hidden, **self.layer_masks)
        return out[0] if isinstance(out, tuple) else out  # a tuple up to transformers 4.5x, then the tensor

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, tokens, width]: hidden_states[select_layer], leading tokens dropped."""
        track = torch.is_grad_enabled() and (pixel_values.requires_grad or
                                             any(p.requires_grad for p in self.parameters()))
        with torch.set_grad_enabled(track):
            hidden = self.embed(pixel_values)
            for layer in self.vision_model.encoder.layers[:self.upto]:
                if self.gradient_checkpointing and self.training and track:
                    hidden = checkpoint(partial(self._layer, layer), hidden)
                else:
                    hidden = self._layer(layer, hidden)
            return hidden[:, self.drop:]
