"""InternViT, both official flavours (format doc §3, §5), as a vision tower.

* 300M style: LayerNorm, qkv bias, no q/k norm.
* 6B style: RMSNorm (computed in fp32), no qkv bias, RMSNorm on q and k over the full width.

Parameter names inside the tower are the official ones (`embeddings.*`, `encoder.layers.N.*`), so
the `internvl` layout maps only the prefix. Modules are created in the official order, so a seeded
random init draws the same numbers as the exported remote code's.
"""
from types import SimpleNamespace
from typing import List, Tuple

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, resample_abs_pos_embed
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from . import register
from ..checkpointing import checkpoint
from ..cpu_half import PatchConv2d

# The official config schema's defaults (InternVisionConfig).
DEFAULTS = dict(num_channels=3, patch_size=14, image_size=224, qkv_bias=False, hidden_size=3200, num_attention_heads=25,
                intermediate_size=12800, qk_normalization=True, num_hidden_layers=48, hidden_act='gelu',
                norm_type='rms_norm', layer_norm_eps=1e-6, dropout=0.0, drop_path_rate=0.0, attention_dropout=0.0,
                initializer_range=0.02, initializer_factor=0.1)
NORMS = {'rms_norm': LlamaRMSNorm, 'layer_norm': nn.LayerNorm}


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, cfg.hidden_size))
        self.patch_embedding = PatchConv2d(cfg.num_channels, cfg.hidden_size, cfg.patch_size, cfg.patch_size)
        self.position_embedding = nn.Parameter(torch.randn(1, self.grid ** 2 + 1, cfg.hidden_size))

    def resampled_patch_positions(self, height: int, width: int) -> torch.Tensor:
        """Patch position embeddings resampled (bicubic, fp32, no antialias) to a height x width grid."""
        return resample_abs_pos_embed(self.position_embedding, [height, width], [self.grid, self.grid],
                                      num_prefix_tokens=1, antialias=False)[:, 1:]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(dtype))
        batch, _, height, width = patches.shape
        tokens = torch.cat([self.class_embedding.expand(batch, 1, -1).to(dtype), patches.flatten(2).transpose(1, 2)], 1)
        positions = torch.cat([self.position_embedding[:, :1], self.resampled_patch_positions(height, width)], 1)
        return tokens + positions.to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width, self.heads = cfg.hidden_size, cfg.num_attention_heads
        if width % self.heads:
            raise ValueError(f'hidden_size {width} is not divisible by num_attention_heads {self.heads}')
        self.qkv = nn.Linear(width, 3 * width, bias=cfg.qkv_bias)  # rows q | k | v
        self.attn_drop = cfg.attention_dropout
        self.proj_drop = nn.Dropout(cfg.dropout)
        if cfg.qk_normalization:  # over all heads at once, not per head
            self.q_norm = LlamaRMSNorm(width, eps=cfg.layer_norm_eps)
            self.k_norm = LlamaRMSNorm(width, eps=cfg.layer_norm_eps)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if hasattr(self, 'q_norm'):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(batch, tokens, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, tokens, width)))


class Block(nn.Module):
    def __init__(self, cfg, drop_path: float):
        super().__init__()
        if cfg.hidden_act != 'gelu':
            raise ValueError(f'InternViT supports hidden_act "gelu" only, got {cfg.hidden_act!r}')
        width = cfg.hidden_size
        self.attn = Attention(cfg)
        self.mlp = Mlp(width, cfg.intermediate_size, act_layer=nn.GELU)  # exact (erf) GELU
        self.norm1 = NORMS[cfg.norm_type](width, eps=cfg.layer_norm_eps)
        self.norm2 = NORMS[cfg.norm_type](width, eps=cfg.layer_norm_eps)
        self.ls1 = nn.Parameter(cfg.initializer_factor * torch.ones(width))
        self.ls2 = nn.Parameter(cfg.initializer_factor * torch.ones(width))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x).to(x.dtype)) * self.ls1)
        return x + self.drop_path(self.mlp(self.norm2(x).to(x.dtype)) * self.ls2)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([Block(cfg, rate) for rate in rates])
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, upto: int = None) -> torch.Tensor:
        """Runs the first `upto` layers (all by default)."""
        for layer in self.layers[:upto]:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x)
            else:
                x = layer(x)
        return x


@register('intern_vit')
class InternViT(nn.Module):
    """settings: {'config': InternVisionConfig fields, 'select_layer': -1}."""
    lora_targets = ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2']

    def __init__(self, config: dict, select_layer: int = -1, init_weights: bool = True):
        super().__init__()
        self.cfg = self.read_config(config)
        self.select_layer = select_layer
        self.embeddings = Embeddings(self.cfg)
        self.encoder = Encoder(self.cfg)
        if init_weights:
            self.apply(self._init_weights)

    @staticmethod
    def read_config(config: dict) -> SimpleNamespace:
        return SimpleNamespace(**{**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}})

    def _init_weights(self, module):
        std = self.cfg.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, Embeddings):
            module.class_embedding.data.normal_(0.0, std)
            module.position_embedding.data.normal_(0.0, std)

    # --- the tower interface ------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.cfg.hidden_size

    @classmethod
    def patch_grid(cls, settings: dict, image_size: int) -> Tuple[int, int]:
        """Patch rows x cols of one `image_size` tile (CLS dropped)."""
        side = image_size // cls.read_config(settings['config']).patch_size
        return side, side

    @classmethod
    def tiny_settings(cls, image_size: int = 56, flavour: str = '300m', width: int = 32, layers: int = 2,
                      heads: int = 2, patch_size: int = 14) -> dict:
        """A tiny tower of either official flavour: '300m' (LayerNorm, qkv bias) or '6b' (RMSNorm, q/k norm)."""
        six_b = flavour == '6b'
        return {'config': dict(architectures=['InternVisionModel'], model_type='intern_vit_6b', image_size=image_size,
                               patch_size=patch_size, hidden_size=width, num_attention_heads=heads,
                               intermediate_size=width * 4, num_hidden_layers=layers, num_channels=3,
                               qkv_bias=not six_b, qk_normalization=six_b,
                               norm_type='rms_norm' if six_b else 'layer_norm', layer_norm_eps=1e-6, hidden_act='gelu',
                               use_flash_attn=False, drop_path_rate=0.0, dropout=0.0, attention_dropout=0.0,
                               initializer_range=0.02, initializer_factor=0.1)}

    @classmethod
    def describe(cls, settings: dict) -> str:
        cfg = cls.read_config(settings['config'])
        if cfg.norm_type == 'rms_norm' and cfg.qk_normalization:
            return '6B-style (RMSNorm, q/k norm, no qkv bias)'
        if cfg.norm_type == 'layer_norm':
            return '300M-style (LayerNorm, qkv bias)' if cfg.qkv_bias else 'LayerNorm, no qkv bias'
        return f'{cfg.norm_type} (qk_normalization={cfg.qk_normalization})'

    def blocks(self) -> List[nn.Module]:
        return list(self.encoder.layers)

    def set_gradient_checkpointing(self, enable: bool = True):
        self.encoder.gradient_checkpointing = enable

    def hidden_states(self, pixel_values: torch.Tensor, layer: int) -> torch.Tensor:
        """hidden_states[layer] in the official numbering: 0 = embeddings, -1 = the last layer."""
        count = len(self.encoder.layers)
        upto = layer if layer >= 0 else count + 1 + layer
        return self.encoder(self.embeddings(pixel_values), upto=upto)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, patches, width] from `select_layer`, CLS dropped."""
        return self.hidden_states(pixel_values, self.select_layer)[:, 1:]
