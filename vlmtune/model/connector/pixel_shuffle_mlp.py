"""InternVL connector: pixel shuffle (v1/v2) then `mlp1` = LayerNorm, Linear, GELU, Linear."""
import torch
from torch import nn

from ...formats.internvl_remote.modeling_internvl_chat import pixel_shuffle
from . import register


@register('internvl_mlp1')
class PixelShuffleMLP(nn.Sequential):
    """Submodules 0..3 keep the official `mlp1.{0,1,3}` parameter names."""

    def __init__(self, vision_width: int, llm_width: int, downsample_ratio: float = 0.5, ps_version: str = 'v2'):
        in_width = vision_width * int(round(1 / downsample_ratio)) ** 2
        super().__init__(nn.LayerNorm(in_width), nn.Linear(in_width, llm_width), nn.GELU(),
                         nn.Linear(llm_width, llm_width))
        self.downsample_ratio = downsample_ratio
        self.ps_version = ps_version

    def forward(self, patch_features: torch.Tensor) -> torch.Tensor:
        tiles, patches, width = patch_features.shape
        side = int(patches ** 0.5)
        if side * side != patches:
            raise ValueError(f'{patches} patch tokens do not form a square grid')
        grid = patch_features.reshape(tiles, side, side, width)
        shuffled = pixel_shuffle(grid, self.downsample_ratio, self.ps_version)
        return super().forward(shuffled.reshape(tiles, -1, shuffled.shape[-1]))
