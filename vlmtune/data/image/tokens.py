"""How images appear to the LLM. An image processor says what an image becomes (`ImageLayout`: tiles,
and for spatial merges the tile grid and the original size); the model spec fills `ImageTokens` from
its vision tower and connector (tokens per tile, their grid, the merge). Every place that needs an
image-token count (sample encoding, the length cache, `data show`, `inspect`, the model's chat and
forward) asks `ImageTokens.count`.

Merges:
* `flat` (InternVL, LLaVA-1.5): tiles x tokens per tile.
* `spatial_unpad` (LLaVA-NeXT): the base tile's tokens, then the grid tiles' token grid re-assembled
  as one 2-D grid, cropped back to the image's aspect ratio (`unpadded_shape`) and followed by one
  `image_newline` per row. An image without grid tiles gets its base tokens + one newline.
"""
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from datasets_proc.canonical import IMAGE_TAG  # where an image goes in conversation text (the row schema's)

# The one home of the image-token strings the families put in place of that tag.
INTERNVL_IMAGE = ('<img>', '<IMG_CONTEXT>', '</img>')  # (start, context, end) of an InternVL image block
# What the official InternVL finetune script adds to an LLM's tokenizer, in its order, after the LLM's specials.
INTERNVL_ADDED = ('<img>', '</img>', '<IMG_CONTEXT>', '<quad>', '</quad>', '<ref>', '</ref>', '<box>', '</box>')
LLAVA_IMAGE = ('', IMAGE_TAG, '')  # LLaVA: the `<image>` token itself, repeated once per image feature
LLAVA_ADDED = (IMAGE_TAG,)


@dataclass(frozen=True)
class ImageLayout:
    tiles: int                                 # pixel tiles of the image (base / thumbnail included)
    grid: Optional[Tuple[int, int]] = None     # (rows, cols) of grid tiles, for spatial merges
    size: Optional[Tuple[int, int]] = None     # the original (width, height), for unpadding


def unpadded_shape(rows: int, cols: int, size: Tuple[int, int]) -> Tuple[int, int]:
    """A (rows x cols) feature grid of a padded canvas, cropped to the original (width, height)'s aspect
    ratio the way transformers' `unpad_image` does (7-digit rounding before the int)."""
    width, height = size
    if width / height > cols / rows:  # wider than the canvas: padding was added top and bottom
        new_rows = int(round(height * (cols / width), 7))
        pad = (rows - new_rows) // 2
        return rows - 2 * pad, cols
    new_cols = int(round(width * (rows / height), 7))
    pad = (cols - new_cols) // 2
    return rows, cols - 2 * pad


@dataclass(frozen=True)
class ImageTokens:
    per_tile: int
    start: str = INTERNVL_IMAGE[0]
    context: str = INTERNVL_IMAGE[1]
    end: str = INTERNVL_IMAGE[2]
    merge: str = 'flat'                           # 'flat' | 'spatial_unpad'
    tile_grid: Optional[Tuple[int, int]] = None   # the connector's token grid per tile (spatial merges)

    def count(self, image: Union[int, ImageLayout]) -> int:
        """Context tokens for an image: a tile count (flat merge) or its ImageLayout."""
        layout = image if isinstance(image, ImageLayout) else ImageLayout(tiles=int(image))
        if self.merge == 'flat':
            return self.per_tile * layout.tiles
        if self.merge != 'spatial_unpad':
            raise ValueError(f'unknown image merge {self.merge!r}')
        if not layout.grid or layout.tiles == 1:
            return self.per_tile + 1  # the base tile + one newline
        rows, cols = unpadded_shape(layout.grid[0] * self.tile_grid[0], layout.grid[1] * self.tile_grid[1],
                                    layout.size)
        return self.per_tile + rows * (cols + 1)

    def text(self, image) -> str:
        """What one `<image>` tag becomes in the prompt."""
        return self.start + self.context * self.count(image) + self.end

    def expand(self, prompt: str, images) -> str:
        """Replace the `<image>` tags in order, first occurrence first (images: tile counts or layouts)."""
        for image in images:
            prompt = prompt.replace(IMAGE_TAG, self.text(image), 1)
        return prompt
