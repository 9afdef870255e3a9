"""Tests for vlmtune.data.tiling against an independent per-tile oracle of the official
InternVL preprocessing (PIL crops + torchvision Compose per tile)."""

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from vlmtune.data.normalisation import IMAGENET_MEAN, IMAGENET_STD
from vlmtune.data.tiling import (
    TilingConfig,
    blank_image,
    candidate_grids,
    choose_grid,
    count_tiles,
    jpeg_reencode,
    load_and_tile,
    normalize_uint8,
    tile_image,
    tiles_per_image,
)

# ---------------------------------------------------------------- oracle (official code path)


def official_candidates(min_num, max_num):
    ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    return sorted(ratios, key=lambda x: x[0] * x[1])


def official_grid(width, height, min_num, max_num, image_size):
    aspect_ratio = width / height
    best_ratio_diff, best_ratio = float("inf"), (1, 1)
    area = width * height
    for ratio in official_candidates(min_num, max_num):
        ratio_diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if ratio_diff < best_ratio_diff:
            best_ratio_diff, best_ratio = ratio_diff, ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def oracle_tiles(img, size, max_num, min_num=1, use_thumbnail=True):
    img = img.convert("RGB")
    cols, rows = official_grid(img.width, img.height, min_num, max_num, size)
    resized = img.resize((size * cols, size * rows))
    crops = []
    for i in range(cols * rows):
        box = ((i % cols) * size, (i // cols) * size, (i % cols + 1) * size, (i // cols + 1) * size)
        crops.append(resized.crop(box))
    if use_thumbnail and len(crops) != 1:
        crops.append(img.resize((size, size)))
    transform = T.Compose(
        [
            T.Resize((size, size), interpolation=InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )
    return torch.stack([transform(c) for c in crops])


def noise_image(width, height, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 56, (height, width, 3)).astype(np.float32)
    img = Image.fromarray((gradient + noise).clip(0, 255).astype(np.uint8))
    if mode == "RGBA":
        alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
        img = Image.merge("RGBA", (*img.split(), Image.fromarray(alpha)))
    elif mode == "P":
        img = img.quantize(colors=64)
    elif mode != "RGB":
        img = img.convert(mode)
    return img


# ---------------------------------------------------------------- grid selection


@pytest.mark.parametrize("max_num", range(1, 41))
def test_candidate_order_matches_official(max_num):
    for min_num in (1, 2):
        if min_num <= max_num:
            assert candidate_grids(min_num, max_num) == official_candidates(min_num, max_num)


@pytest.mark.parametrize(
    "size, max12, max6",
    [
        ((800, 600), 13, 7),
        ((300, 1000), 4, 4),
        ((448, 448), 1, 1),
        ((2000, 200), 11, 7),
    ],
)
def test_tile_counts(size, max12, max6):
    assert count_tiles(*size, max_num=12) == max12
    assert count_tiles(*size, max_num=6) == max6


def test_grids_for_reference_sizes():
    assert choose_grid(800, 600, max_num=12) == (4, 3)
    assert choose_grid(800, 600, max_num=6) == (3, 2)
    assert choose_grid(300, 1000, max_num=12) == (1, 3)
    assert choose_grid(2000, 200, max_num=12) == (10, 1)
    assert choose_grid(2000, 200, max_num=6) == (6, 1)
    # exact aspect ties: a larger grid only wins when the image has enough pixels
    assert choose_grid(2000, 1000, max_num=12) == (4, 2)
    assert choose_grid(896, 448, max_num=12) == (2, 1)
    assert choose_grid(1344, 1344, max_num=12) == (3, 3)
    assert choose_grid(448, 448, max_num=12) == (1, 1)


def test_choose_grid_matches_official_on_random_sizes():
    rng = random.Random(1234)
    for _ in range(3000):
        w, h = rng.randint(1, 4000), rng.randint(1, 4000)
        max_num = rng.choice([1, 4, 6, 12, 24, 40])
        min_num = rng.randint(1, max_num)
        size = rng.choice([224, 448])
        assert choose_grid(w, h, min_num, max_num, size) == official_grid(w, h, min_num, max_num, size)


def test_count_tiles_without_thumbnail():
    assert count_tiles(800, 600, max_num=12, use_thumbnail=False) == 12
    assert count_tiles(448, 448, max_num=12, use_thumbnail=False) == 1


def test_invalid_bounds_rejected():
    with pytest.raises(ValueError):
        candidate_grids(3, 2)
    with pytest.raises(ValueError):
        choose_grid(0, 10)


# ---------------------------------------------------------------- pixels


def test_normalisation_within_1e6_for_every_uint8_value():
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 256).expand(3, 1, 256).contiguous()
    reference = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(values.float().div(255))
    assert torch.allclose(normalize_uint8(values), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "width, height, max_num, mode",
    [
        (80, 60, 12, "RGB"),  # 4x3 + thumbnail
        (97, 61, 6, "RGB"),  # non-multiple of the tile size
        (30, 100, 12, "RGB"),  # tall
        (200, 20, 12, "RGB"),  # very wide: 10x1
        (32, 32, 12, "RGB"),  # single tile, no thumbnail
        (45, 123, 12, "RGBA"),
        (70, 50, 6, "L"),
        (90, 40, 6, "P"),
    ],
)
def test_pixels_match_per_tile_oracle(width, height, max_num, mode):
    size = 32
    img = noise_image(width, height, seed=width * height, mode=mode)
    cfg = TilingConfig(image_size=size, max_num=max_num)
    got = tile_image(img, cfg)
    want = oracle_tiles(img, size, max_num)
    assert got.dtype == torch.float32
    assert got.shape == want.shape
    assert got.shape[0] == count_tiles(width, height, max_num=max_num, image_size=size)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)


def test_pixels_match_oracle_at_448():
    img = noise_image(800, 600, seed=7)
    got = tile_image(img, TilingConfig(image_size=448, max_num=6))
    want = oracle_tiles(img, 448, 6)
    assert got.shape == (7, 3, 448, 448)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)


def test_tile_order_is_row_major():
    # a 2x2 grid of flat colours: tile k must carry colour k
    size = 16
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    img = Image.new("RGB", (2 * size, 2 * size))
    for k, colour in enumerate(colours):
        col, row = k % 2, k // 2
        img.paste(colour, (col * size, row * size, (col + 1) * size, (row + 1) * size))
    # ask for exactly 4 tiles so the grid is 2x2 and the resize is the identity
    tiles = tile_image(img, TilingConfig(image_size=size, min_num=4, max_num=4))
    assert tiles.shape[0] == 5
    mean = torch.tensor(IMAGENET_MEAN).view(3)
    std = torch.tensor(IMAGENET_STD).view(3)
    for k, colour in enumerate(colours):
        centre = tiles[k, :, size // 2, size // 2]
        expected = (torch.tensor(colour, dtype=torch.float32) / 255 - mean) / std
        assert torch.allclose(centre, expected, atol=1e-5)


def test_thumbnail_is_last_and_optional():
    size = 32
    img = noise_image(80, 60, seed=3)
    with_thumb = tile_image(img, TilingConfig(image_size=size, max_num=12))
    no_thumb = tile_image(img, TilingConfig(image_size=size, max_num=12, use_thumbnail=False))
    assert with_thumb.shape[0] == 13 and no_thumb.shape[0] == 12
    assert torch.equal(with_thumb[:12], no_thumb)
    thumb = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(T.ToTensor()(img.resize((size, size))))
    assert torch.allclose(with_thumb[-1], thumb, rtol=0, atol=1e-6)


def test_single_tile_gets_no_thumbnail():
    tiles = tile_image(noise_image(32, 32), TilingConfig(image_size=32, max_num=12))
    assert tiles.shape == (1, 3, 32, 32)


def test_non_dynamic_gives_one_resized_tile():
    size = 32
    img = noise_image(97, 61, seed=5, mode="RGBA")
    got = tile_image(img, TilingConfig(image_size=size, max_num=12, dynamic=False))
    transform = T.Compose(
        [
            T.Resize((size, size), interpolation=InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    want = transform(img.convert("RGB")).unsqueeze(0)
    assert got.shape == (1, 3, size, size)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)


def test_load_and_tile_from_file(tmp_path):
    img = noise_image(90, 40, seed=11, mode="RGBA")
    path = tmp_path / "x.png"
    img.save(path)
    cfg = TilingConfig(image_size=32, max_num=6)
    got = load_and_tile(path, cfg)
    assert torch.allclose(got, oracle_tiles(img, 32, 6), rtol=0, atol=1e-6)
    assert torch.equal(load_and_tile(str(path), cfg), got)


# ---------------------------------------------------------------- helpers and augmentation


def test_tiles_per_image():
    assert tiles_per_image(12, 1) == 12
    assert tiles_per_image(12, 5) == 2
    assert tiles_per_image(12, 13) == 1
    assert tiles_per_image(6, 4) == 1
    assert tiles_per_image(6, 2) == 3


def test_blank_image():
    img = blank_image()
    assert img.mode == "RGB" and img.size == (224, 224)
    assert np.all(np.asarray(img) == 255)


def test_jpeg_reencode_deterministic_and_lossy():
    img = noise_image(64, 48, seed=2)
    a = jpeg_reencode(img, random.Random(0))
    b = jpeg_reencode(img, random.Random(0))
    assert a.mode == "RGB" and a.size == img.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(img))
    # the quality is one uniform draw in 75..100 from the given rng
    quality = random.Random(0).randint(75, 100)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    expected = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    assert np.array_equal(np.asarray(a), np.asarray(expected))


def test_jpeg_quality_range_covered():
    rng = random.Random(5)
    qualities = set()
    original = rng.randint
    rng.randint = lambda lo, hi: qualities.add((lo, hi)) or original(lo, hi)
    jpeg_reencode(noise_image(16, 16), rng)
    assert qualities == {(75, 100)}


def test_jpeg_augment_in_tile_image_is_opt_in_and_seeded():
    img = noise_image(80, 60, seed=9)
    plain_cfg = TilingConfig(image_size=32, max_num=6)
    aug_cfg = TilingConfig(image_size=32, max_num=6, jpeg_augment=True)
    plain = tile_image(img, plain_cfg, rng=random.Random(1))
    assert torch.equal(plain, tile_image(img, plain_cfg))  # off by default: rng unused
    aug1 = tile_image(img, aug_cfg, rng=random.Random(1))
    aug2 = tile_image(img, aug_cfg, rng=random.Random(1))
    assert torch.equal(aug1, aug2)
    assert aug1.shape == plain.shape
    assert not torch.equal(aug1, plain)
