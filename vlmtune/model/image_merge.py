"""Spatial merges of an image's tile features into its token sequence (LLaVA-NeXT's `spatial_unpad`,
as transformers' `LlavaNextModel.pack_image_features` does it): the base tile's tokens, then the grid
tiles' tokens re-assembled as one 2-D grid, cropped back to the image's aspect ratio, with the learned
`image_newline` after every row. The token count is `ImageTokens.count`'s."""
from typing import List

import torch

from ..data.image import ImageLayout, ImageTokens, unpadded_shape


def spatial_unpad(features: torch.Tensor, layouts: List[ImageLayout], tokens: ImageTokens,
                  newline: torch.Tensor) -> torch.Tensor:
    """features [tiles, per_tile, H] of the images in order -> [sum of count(layout), H]."""
    rows, cols = tokens.tile_grid
    out, start = [], 0
    for layout in layouts:
        tiles = features[start:start + layout.tiles]
        start += layout.tiles
        base = tiles[0]
        if not layout.grid or layout.tiles == 1:
            out += [base, newline[None].to(base.dtype)]
            continue
        grid_rows, grid_cols = layout.grid
        width = tiles.shape[-1]
        grid = tiles[1:].reshape(grid_rows, grid_cols, rows, cols, width).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(grid_rows * rows, grid_cols * cols, width)
        keep_rows, keep_cols = unpadded_shape(grid.shape[0], grid.shape[1], layout.size)
        top, left = (grid.shape[0] - keep_rows) // 2, (grid.shape[1] - keep_cols) // 2
        grid = grid[top:top + keep_rows, left:left + keep_cols]
        grid = torch.cat([grid, newline.to(grid.dtype).expand(keep_rows, 1, width)], dim=1)
        out += [base, grid.reshape(-1, width)]
    if start != len(features):
        raise ValueError(f'{len(features)} image tiles but the images\' layouts account for {start}')
    return torch.cat(out)
