"""Pixel steps shared by the CLIP-family processors (`square`, `pad`, `anyres`): RGB conversion, the
square resize (CLIP's "shortest side to S + centre crop" or SigLIP's plain S x S resize), and /255 +
normalise in the order and precision transformers' image processors use (uint8 -> float64 x 1/255 ->
float32, then (x - mean) / std in float32), so the tensors equal theirs, not just come close.

`ClipPixels` holds the fields the three processors share; each processor subclasses it."""
from dataclasses import asdict, dataclass
from typing import ClassVar, List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..normalisation import CLIP_MEAN, CLIP_STD
from ..tiling import jpeg_reencode


RESAMPLE = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC,
            'lanczos': Image.LANCZOS, 'box': Image.BOX, 'hamming': Image.HAMMING}


def to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == 'RGB' else image.convert('RGB')


def resize(image: Image.Image, size: Tuple[int, int], resample: str) -> Image.Image:
    """PIL resize to (width, height); same-size is skipped (PIL would return an identical copy)."""
    return image if image.size == tuple(size) else image.resize(tuple(size), RESAMPLE[resample])


def square_resize(image: Image.Image, size: int, crop: bool = True, resample: str = 'bicubic') -> Image.Image:
    """An S x S image. crop: CLIP (shortest side to S, the long side int(S * long / short), centre crop
    with the (extra) // 2 offset); else SigLIP (plain resize to S x S, aspect not kept)."""
    if not crop:
        return resize(image, (size, size), resample)
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    image = resize(image, new, resample)
    if new == (size, size):
        return image
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def normalize(images: Sequence[Image.Image], mean, std) -> torch.Tensor:
    """S x S RGB images -> float32 [n, 3, S, S], transformers' rescale then normalize."""
    pixels = torch.from_numpy(np.stack([np.asarray(im) for im in images]))           # [n, S, S, 3] uint8
    pixels = (pixels.to(torch.float64) * (1 / 255)).to(torch.float32)
    pixels = (pixels - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
    return pixels.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class ClipPixels:
    """Fields and steps of a CLIP-style processor. Defaults: CLIP ViT-L/14-336.
    SigLIP's processor: image_size=384, crop=False, mean=SIGLIP_MEAN, std=SIGLIP_STD."""
    type: ClassVar[str] = ''
    image_size: int = 336
    mean: Tuple[float, float, float] = CLIP_MEAN
    std: Tuple[float, float, float] = CLIP_STD
    resample: str = 'bicubic'
    crop: bool = True   # CLIP's shortest side + centre crop; False: SigLIP's plain S x S resize

    def __post_init__(self):
        # settings come back from JSON as lists; keep tuples so instances compare and hash
        object.__setattr__(self, 'mean', tuple(float(x) for x in self.mean))
        object.__setattr__(self, 'std', tuple(float(x) for x in self.std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f'{self.type}: mean and std need 3 values, got {self.mean}, {self.std}')
        if self.resample not in RESAMPLE:
            raise ValueError(f'{self.type}: unknown resample {self.resample!r}; known: {sorted(RESAMPLE)}')

    @staticmethod
    def tiny_settings() -> dict:
        return {'image_size': 56}

    def settings(self) -> dict:
        fields = asdict(self)
        return {'type': self.type, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}

    def prepare(self, image: Image.Image, rng=None, jpeg_augment: bool = False) -> Image.Image:
        image = to_rgb(image)
        return jpeg_reencode(image, rng) if jpeg_augment else image

    def square(self, image: Image.Image) -> Image.Image:
        return square_resize(image, self.image_size, self.crop, self.resample)

    def to_tensor(self, images: List[Image.Image]) -> torch.Tensor:
        return normalize([self.square(im) for im in images], self.mean, self.std)

    def blank(self) -> torch.Tensor:
        """Pixels for a text-only sample: a white image, one tile (its features are dropped)."""
        return self.to_tensor([Image.new('RGB', (self.image_size, self.image_size), (255, 255, 255))])
