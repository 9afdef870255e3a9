"""InternVL dynamic-tiling image preprocessing (official ``load_image`` contract), fast.

The official pipeline picks a (cols, rows) grid whose aspect ratio is closest to the
image's, resizes the image to (S*cols, S*rows) with PIL's default bicubic filter, crops
S x S tiles in row-major order, optionally appends an S x S thumbnail of the whole image,
and runs ``ToTensor`` + ``Normalize(ImageNet)`` on every tile.

This implementation produces the same tensor (within 1e-6) but does the per-pixel work
once per image: one PIL resize, one uint8 array, one fused scale/shift over the whole
canvas, and tiles obtained by a reshape/permute of that canvas instead of per-tile crops.
"""

from __future__ import annotations

import functools
import io
import random
import warnings
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO, Optional, Union

import numpy as np
import torch
from PIL import Image

from .normalisation import IMAGENET_MEAN, IMAGENET_STD

# Quality range of the optional JPEG re-encode augmentation (inclusive).
JPEG_QUALITY_RANGE = (75, 100)


@functools.lru_cache(maxsize=None)
def _candidate_grids_cached(min_num: int, max_num: int) -> tuple[tuple[int, int], ...]:
    # Built exactly like the official code (set, then stable sort by tile count) so the
    # order among equal tile counts -- which decides exact ties in choose_grid -- matches.
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def candidate_grids(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """All (cols, rows) with min_num <= cols*rows <= max_num, in the official scan order."""
    if min_num < 1 or max_num < min_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got {min_num}, {max_num}")
    return list(_candidate_grids_cached(min_num, max_num))


def choose_grid(
    width: int, height: int, min_num: int = 1, max_num: int = 12, image_size: int = 448
) -> tuple[int, int]:
    """Official ``find_closest_aspect_ratio``: returns (cols, rows)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            # Same aspect error: a larger grid wins only if the image has enough pixels.
            best = (cols, rows)
    return best


def count_tiles(
    width: int,
    height: int,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> int:
    """Number of tiles ``tile_image`` produces for an image of this size (dynamic mode)."""
    cols, rows = choose_grid(width, height, min_num, max_num, image_size)
    n = cols * rows
    return n + 1 if use_thumbnail and n > 1 else n


def tiles_per_image(max_num: int, n_images: int) -> int:
    """Per-image tile budget for a sample holding ``n_images`` images."""
    return max(1, max_num // max(1, n_images))


def blank_image() -> Image.Image:
    """Stand-in image for text-only samples: white 224x224 RGB."""
    return Image.new("RGB", (224, 224), (255, 255, 255))


def jpeg_reencode(img: Image.Image, rng: Union[random.Random, None] = None) -> Image.Image:
    """Re-encode as JPEG with quality drawn uniformly from 75..100 (training augmentation).

    ``rng`` may be a ``random.Random`` (deterministic) or None (global ``random`` state).
    """
    source = rng if rng is not None else random
    quality = source.randint(*JPEG_QUALITY_RANGE)
    buf = io.BytesIO()
    _to_rgb(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


@dataclass
class TilingConfig:
    image_size: int = 448
    min_num: int = 1
    max_num: int = 6  # for multi-image samples pass max_num=tiles_per_image(max_num, n)
    use_thumbnail: bool = True
    dynamic: bool = True
    jpeg_augment: bool = False


def _to_rgb(img: Image.Image) -> Image.Image:
    # convert('RGB') always copies; skip it when the image already is RGB.
    return img if img.mode == "RGB" else img.convert("RGB")


@functools.lru_cache(maxsize=None)
def _scale_shift() -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with x*scale + shift == (x/255 - mean)/std.

    Folded in float64 from the float32 mean/std torchvision uses, then rounded once,
    so the float32 result stays within ~5e-7 of ToTensor+Normalize (checked exhaustively
    over all 256 values per channel in the tests).
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).double()
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).double()
    scale = (1.0 / (255.0 * std)).float().view(3, 1, 1)
    shift = (-mean / std).float().view(3, 1, 1)
    return scale, shift


def _normalise_(values: torch.Tensor) -> torch.Tensor:
    """float32 0..255 values [..., 3, H, W] -> ToTensor+Normalize, in place. The one place the two
    float32 operations happen, so the loader's float tiles and the model's normalised uint8 tiles
    are the same numbers."""
    scale, shift = (t.to(values.device) for t in _scale_shift())
    return values.mul_(scale).add_(shift)


def normalize_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> float32 ToTensor+Normalize equivalent, on the pixels' device (the
    model normalises the training loader's uint8 tiles with it)."""
    return _normalise_(pixels.to(torch.float32))


def _pil_to_uint8(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> read-only uint8 tensor [H, W, 3] without an extra copy.

    np.asarray wraps PIL's packed bytes (read-only); the tensor is only ever read, so
    torch's one-time "not writable" warning is silenced instead of copying again.
    """
    arr = np.asarray(img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def _write_grid(canvas: Image.Image, cols: int, rows: int, size: int, out: torch.Tensor) -> None:
    """An (size*cols, size*rows) RGB canvas into ``out`` [rows*cols, 3, size, size]: normalised when
    ``out`` is float32, the raw bytes when it is uint8."""
    pixels = _pil_to_uint8(canvas)
    # [rows*S, cols*S, 3] -> [rows, cols, 3, S, S]: tile k = (row k // cols, col k % cols).
    tiles = pixels.view(rows, size, cols, size, 3).permute(0, 2, 4, 1, 3)
    dst = out.view(rows, cols, 3, size, size)
    dst.copy_(tiles)  # one pass: (uint8 -> float32 and) HWC -> CHW tile layout
    if out.dtype == torch.float32:
        _normalise_(dst)


def tile_image(
    img: Image.Image, cfg: TilingConfig, rng: Optional[random.Random] = None, uint8: bool = False
) -> torch.Tensor:
    """Tile one image per the InternVL contract -> float32 [n_tiles, 3, S, S].

    With ``cfg.dynamic`` False the result is a single S x S resized tile.
    ``rng`` only feeds the JPEG augmentation (None: global ``random`` state).
    ``uint8``: the tiles' bytes, not normalised (``normalize_uint8`` gives the float32 tiles, exactly:
    the same two float32 operations on the same bytes), a quarter of the memory to copy and collate.
    """
    img = _to_rgb(img)
    if cfg.jpeg_augment:
        img = jpeg_reencode(img, rng)
    size = cfg.image_size
    dtype = torch.uint8 if uint8 else torch.float32

    if not cfg.dynamic:
        out = torch.empty((1, 3, size, size), dtype=dtype)
        _write_grid(img.resize((size, size)), 1, 1, size, out)
        return out

    cols, rows = choose_grid(img.width, img.height, cfg.min_num, cfg.max_num, size)
    n = cols * rows
    add_thumbnail = cfg.use_thumbnail and n > 1
    out = torch.empty((n + int(add_thumbnail), 3, size, size), dtype=dtype)
    # PIL's default filter for RGB resize is bicubic, as in the official code.
    _write_grid(img.resize((size * cols, size * rows)), cols, rows, size, out[:n])
    if add_thumbnail:
        _write_grid(img.resize((size, size)), 1, 1, size, out[n:])
    return out


def load_and_tile(
    path: Union[str, PathLike, BinaryIO],
    cfg: TilingConfig,
    rng: Optional[random.Random] = None,
    uint8: bool = False,
) -> torch.Tensor:
    """Open an image file (path or binary file object), convert to RGB, and tile it."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    return tile_image(rgb, cfg, rng, uint8)
