"""LLaVA-NeXT's `anyres` preprocessing, as transformers' `LlavaNextImageProcessor` does it:

1. pick the best canvas among `grid_pinpoints` (`best_resolution`);
2. resize the image keeping its aspect ratio so the limiting side is exact and the other side is
   ceil'd (never past the canvas), then pad it centred with black;
3. cut S x S tiles row-major; prepend the base image (the original squashed to S x S);
4. every one of the 1 + rows*cols images goes through the `square` processor (for an S x S tile that is
   only the normalisation).

`grid_pinpoints` entries are (height, width), as transformers reads `image_grid_pinpoints` (LLaVA's
own code reads them as (width, height); for the symmetric 1.6 list only exact ties differ).

A quirk kept for parity: the padding is (canvas - resized) // 2 on BOTH sides, so an odd difference
leaves the canvas one pixel short, and the last row (or column) of tiles is S-1 pixels; the square
processor then resizes it (CLIP: shortest side to S, centre crop).

merge='spatial_unpad' (default) is LLaVA-NeXT's token layout (base, then the unpadded grid with an
`image_newline` per row); 'flat' concatenates the tiles' tokens."""
import math
from dataclasses import dataclass
from typing import ClassVar, Sequence, Tuple

import torch
from PIL import Image

from . import register
from .pixels import ClipPixels, resize
from .tokens import ImageLayout

# LLaVA-1.6 checkpoints' image_grid_pinpoints, and transformers' default, in their order
LLAVA_NEXT_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))


def best_resolution(width: int, height: int, pinpoints: Sequence[Tuple[int, int]]) -> Tuple[int, int]:
    """(height, width) of the canvas that keeps the most of the image's pixels once fitted inside it
    (effective = min(int(w*s) * int(h*s), w*h)); on equal effective pixels the smaller canvas (less
    waste) wins; on a full tie the earlier entry."""
    best, best_effective, best_wasted = None, 0, math.inf
    for canvas_h, canvas_w in pinpoints:
        scale = min(canvas_w / width, canvas_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = canvas_w * canvas_h - effective
        # strict comparisons: the first of equals stays
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (canvas_h, canvas_w), effective, wasted
    return best


def fitted_size(width: int, height: int, canvas: Tuple[int, int]) -> Tuple[int, int]:
    """(width, height) of the image resized into the (height, width) canvas, aspect kept: the side with
    the smaller scale is exact, the other ceil'd (float arithmetic as transformers does it)."""
    canvas_h, canvas_w = canvas
    scale_w, scale_h = canvas_w / width, canvas_h / height
    if scale_w < scale_h:
        return canvas_w, min(math.ceil(height * scale_w), canvas_h)
    return min(math.ceil(width * scale_h), canvas_w), canvas_h


@register('anyres')
@dataclass(frozen=True)
class AnyRes(ClipPixels):
    type: ClassVar[str] = 'anyres'
    grid_pinpoints: Tuple[Tuple[int, int], ...] = LLAVA_NEXT_PINPOINTS   # (height, width) canvases
    merge: str = 'spatial_unpad'   # or 'flat'

    def __post_init__(self):
        super().__post_init__()
        pinpoints = tuple((int(h), int(w)) for h, w in self.grid_pinpoints)
        object.__setattr__(self, 'grid_pinpoints', pinpoints)
        # transformers counts tiles with ceil and places them with floor; only multiples agree
        bad = [p for p in pinpoints if min(p) <= 0 or p[0] % self.image_size or p[1] % self.image_size]
        if not pinpoints or bad:
            raise ValueError(f'anyres: grid_pinpoints must be positive multiples of image_size '
                             f'{self.image_size}, got {bad or "none"}')
        if self.merge not in ('spatial_unpad', 'flat'):
            raise ValueError(f"anyres: merge must be 'spatial_unpad' or 'flat', got {self.merge!r}")

    @staticmethod
    def tiny_settings() -> dict:
        return {'image_size': 56, 'grid_pinpoints': [[56, 112], [112, 56], [112, 112]]}

    def settings(self) -> dict:
        out = super().settings()
        out['grid_pinpoints'] = [list(p) for p in self.grid_pinpoints]
        return out

    def canvas(self, width: int, height: int) -> Tuple[int, int]:
        """(height, width) of the best canvas for an image of this size."""
        return best_resolution(width, height, self.grid_pinpoints)

    def grid(self, width: int, height: int, n_images: int = 1):
        """(cols, rows) of S x S tiles on the best canvas."""
        canvas_h, canvas_w = self.canvas(width, height)
        return canvas_w // self.image_size, canvas_h // self.image_size

    def num_tiles(self, width: int, height: int, n_images: int = 1) -> int:
        cols, rows = self.grid(width, height)
        return 1 + rows * cols

    def layout(self, width: int, height: int, n_images: int = 1) -> ImageLayout:
        """From the header size only: the base tile + the grid, its (rows, cols), the (width, height)."""
        cols, rows = self.grid(width, height)
        return ImageLayout(tiles=1 + rows * cols, grid=(rows, cols), size=(width, height))

    def tiles(self, image: Image.Image):
        """The base image and the canvas tiles (row-major), before the square processor."""
        width, height = image.size
        canvas_h, canvas_w = self.canvas(width, height)
        new_w, new_h = fitted_size(width, height, (canvas_h, canvas_w))
        left, top = (canvas_w - new_w) // 2, (canvas_h - new_h) // 2
        canvas = Image.new('RGB', (new_w + 2 * left, new_h + 2 * top), (0, 0, 0))
        canvas.paste(resize(image, (new_w, new_h), self.resample), (left, top))
        size = self.image_size
        tiles = [canvas.crop((x, y, min(x + size, canvas.width), min(y + size, canvas.height)))
                 for y in range(0, canvas.height, size) for x in range(0, canvas.width, size)]
        return [resize(image, (size, size), self.resample)] + tiles

    def process(self, image, n_images: int = 1, rng=None, jpeg_augment: bool = False) -> torch.Tensor:
        """PIL image -> float32 [1 + rows*cols, 3, S, S], the base first."""
        return self.to_tensor(self.tiles(self.prepare(image, rng, jpeg_augment)))
