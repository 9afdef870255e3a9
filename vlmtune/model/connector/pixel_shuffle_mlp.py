"""InternVL connector (format doc §5): pixel shuffle (v1/v2), then LayerNorm, Linear, GELU, Linear.
Submodules 0..3 keep the official `mlp1.{0,1,3}` names under the connector."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import register


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, version: str = 'v2') -> torch.Tensor:
    """[B, h, w, C] -> [B, h*s, w*s, C/s^2]. Token (i, j) holds x[ri+a, rj+b] for a, b in 0..r-1,
    position-major (r = 1/s). v2 orders tokens row-major over blocks, v1 column-major."""
    batch, height, width, channels = x.shape
    r = int(round(1 / scale_factor))
    # pixel_unshuffle stacks channels as (C, a, b); the official order is (a, b, C).
    blocks = F.pixel_unshuffle(x.permute(0, 3, 1, 2), r).view(batch, channels, r * r, height // r, width // r)
    out = blocks.permute(0, 3, 4, 2, 1).reshape(batch, height // r, width // r, r * r * channels)
    return (out.transpose(1, 2) if version == 'v1' else out).contiguous()


@register('pixel_shuffle_mlp')
class PixelShuffleMLP(nn.Sequential):
    lora_targets = ['1', '3']  # the two Linear layers

    def __init__(self, vision_width: int, llm_width: int, downsample_ratio: float = 0.5, ps_version: str = 'v2'):
        if ps_version not in ('v1', 'v2'):
            raise ValueError(f"ps_version {ps_version!r}: use 'v1' or 'v2'")
        in_width = vision_width * int(round(1 / downsample_ratio)) ** 2
        super().__init__(nn.LayerNorm(in_width), nn.Linear(in_width, llm_width), nn.GELU(),
                         nn.Linear(llm_width, llm_width))
        self.downsample_ratio = downsample_ratio
        self.ps_version = ps_version

    @staticmethod
    def tiny_settings() -> dict:
        return {'downsample_ratio': 0.5, 'ps_version': 'v2'}

    @classmethod
    def tokens_out(cls, settings: dict, patch_grid: Tuple[int, int]) -> int:
        """Tokens per tile for a patch grid (official: int(patches * ratio^2))."""
        return int(patch_grid[0] * patch_grid[1] * settings.get('downsample_ratio', 0.5) ** 2)

    @classmethod
    def grid_out(cls, settings: dict, patch_grid: Tuple[int, int]) -> Tuple[int, int]:
        ratio = settings.get('downsample_ratio', 0.5)
        return int(patch_grid[0] * ratio), int(patch_grid[1] * ratio)

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        tiles, patches, width = patch_features.shape
        side = int(patches ** 0.5)
        if side * side != patches:
            raise ValueError(f'{patches} patch tokens do not form a square grid')
        shuffled = pixel_shuffle(patch_features.reshape(tiles, side, side, width), self.downsample_ratio,
                                 self.ps_version)
        return super().forward(shuffled.reshape(tiles, -1, shuffled.shape[-1]))
