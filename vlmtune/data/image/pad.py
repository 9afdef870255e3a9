"""LLaVA-1.5's `pad` preprocessing (image_aspect_ratio='pad', `expand2square`): the image centred on a
square canvas of side max(w, h) filled with the processor mean as 0-255 ints (`int(m * 255)`: CLIP ->
(122, 116, 104)), offset (max - min) // 2, then the `square` processor on that canvas. One tile; the
fields, layout and settings are `square`'s."""
from dataclasses import dataclass
from typing import ClassVar, Tuple

import torch
from PIL import Image

from . import register
from .square import Square


@register('pad')
@dataclass(frozen=True)
class Pad(Square):
    type: ClassVar[str] = 'pad'

    @property
    def background(self) -> Tuple[int, int, int]:
        return tuple(int(x * 255) for x in self.mean)

    def expand_to_square(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if width == height:
            return image
        side = max(width, height)
        canvas = Image.new('RGB', (side, side), self.background)
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        return canvas

    def process(self, image, n_images: int = 1, rng=None, jpeg_augment: bool = False) -> torch.Tensor:
        """PIL image -> float32 [1, 3, S, S]."""
        return self.to_tensor([self.expand_to_square(self.prepare(image, rng, jpeg_augment))])
