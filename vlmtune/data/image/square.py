"""LLaVA's `square` preprocessing (image_aspect_ratio='square'): the vision tower's own processor on
the whole image, one tile. Default CLIP ViT-L/14-336 (shortest side to 336 with PIL bicubic, centre
crop, CLIP mean/std), as transformers' `CLIPImageProcessor`; `crop=False` with mean/std 0.5 is
`SiglipImageProcessor` (plain resize to S x S)."""
from dataclasses import dataclass
from typing import ClassVar

import torch

from . import register
from .pixels import ClipPixels
from .tokens import ImageLayout


@register('square')
@dataclass(frozen=True)
class Square(ClipPixels):
    type: ClassVar[str] = 'square'
    merge: ClassVar[str] = 'flat'

    def layout(self, width: int, height: int, n_images: int = 1) -> ImageLayout:
        return ImageLayout(tiles=1)

    def num_tiles(self, width: int, height: int, n_images: int = 1) -> int:
        return 1

    def grid(self, width: int, height: int, n_images: int = 1):
        return (1, 1)

    def process(self, image, n_images: int = 1, rng=None, jpeg_augment: bool = False) -> torch.Tensor:
        """PIL image -> float32 [1, 3, S, S]."""
        return self.to_tensor([self.prepare(image, rng, jpeg_augment)])
