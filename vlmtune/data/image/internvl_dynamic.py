"""InternVL dynamic high-resolution tiling (format doc §4): the grid closest to the image's aspect
ratio within [min_tiles, max_tiles], S x S tiles in row-major order, a thumbnail when there is more
than one tile, ImageNet normalisation. Multi-image samples share the tile budget."""
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from ..tiling import (TilingConfig, blank_image, choose_grid, count_tiles, normalize_uint8, tile_image,
                      tiles_per_image)
from . import register
from .tokens import ImageLayout


@register('internvl_dynamic')
@dataclass(frozen=True)
class InternVLDynamic:
    type: ClassVar[str] = 'internvl_dynamic'
    merge: ClassVar[str] = 'flat'          # tiles' tokens one after another (data/image/tokens.py)
    uint8_pixels: ClassVar[bool] = True  # process(..., uint8=True) / normalize(): the model normalises
    image_size: int = 448
    min_tiles: int = 1
    max_tiles: int = 6
    use_thumbnail: bool = True
    dynamic: bool = True

    def settings(self) -> dict:
        return {'type': self.type, **asdict(self)}

    @staticmethod
    def tiny_settings() -> dict:
        return {'image_size': 56, 'max_tiles': 2}

    def tiling(self, n_images: int = 1, jpeg_augment: bool = False) -> TilingConfig:
        """The tiling of one image in a sample of `n_images` images (official: max(1, max // n))."""
        return TilingConfig(image_size=self.image_size, min_num=self.min_tiles,
                            max_num=tiles_per_image(self.max_tiles, max(1, n_images)),
                            use_thumbnail=self.use_thumbnail, dynamic=self.dynamic, jpeg_augment=jpeg_augment)

    def grid(self, width: int, height: int, n_images: int = 1):
        cfg = self.tiling(n_images)
        return choose_grid(width, height, cfg.min_num, cfg.max_num, cfg.image_size) if cfg.dynamic else (1, 1)

    def num_tiles(self, width: int, height: int, n_images: int = 1) -> int:
        """Tiles an image of this size becomes (from its header size only, no decoding)."""
        cfg = self.tiling(n_images)
        if not cfg.dynamic:
            return 1
        return count_tiles(width, height, cfg.min_num, cfg.max_num, cfg.image_size, cfg.use_thumbnail)

    def layout(self, width: int, height: int, n_images: int = 1) -> ImageLayout:
        return ImageLayout(tiles=self.num_tiles(width, height, n_images))

    def process(self, image, n_images: int = 1, rng=None, jpeg_augment: bool = False,
                uint8: bool = False) -> torch.Tensor:
        """PIL image -> float32 [tiles, 3, S, S] (uint8: the bytes, for `normalize` where the model runs)."""
        return tile_image(image, self.tiling(n_images, jpeg_augment), rng if jpeg_augment else None, uint8)

    def single_tile(self, image, rng=None, uint8: bool = False) -> torch.Tensor:
        """One S x S tile of the whole image (a video frame: no tiling, no thumbnail); rng: the JPEG degradation."""
        return tile_image(image, TilingConfig(image_size=self.image_size, max_num=1, jpeg_augment=rng is not None),
                          rng, uint8)

    def blank(self, uint8: bool = False) -> torch.Tensor:
        """Pixels for a text-only sample: a white image, one tile (its features are dropped)."""
        return tile_image(blank_image(), TilingConfig(image_size=self.image_size, max_num=1), uint8=uint8)

    @staticmethod
    def normalize(pixels: torch.Tensor) -> torch.Tensor:
        """uint8 tiles -> the float32 tiles `process` returns, on the tiles' device."""
        return normalize_uint8(pixels)
