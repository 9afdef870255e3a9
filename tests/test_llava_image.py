"""LLaVA image processors (`square`, `pad`, `anyres`) against transformers' processors and model:
pixels (CLIPImageProcessor, SiglipImageProcessor, expand2square + CLIP, LlavaNextImageProcessor), the
best-resolution tie rules, and tokens per image (the seed-systems table, LlavaNextProcessor's
placeholder count, a tiny random LlavaNextForConditionalGeneration's packed features)."""
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaNextConfig,
                          LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor,
                          PreTrainedTokenizerFast, SiglipImageProcessor)
from transformers.image_processing_utils import select_best_resolution

from vlmtune.data.image import ImageLayout, ImageTokens, build_image_processor
from vlmtune.data.image.anyres import best_resolution
from vlmtune.data.normalisation import CLIP_MEAN, CLIP_STD
from vlmtune.model.image_merge import spatial_unpad

PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]   # LLaVA-1.6, (height, width)
SIZES = [(336, 336), (800, 600), (1000, 500), (500, 1000), (1920, 1080)]   # (width, height)
# sizes whose aspect-kept resize leaves an odd margin: transformers' canvas is one pixel short
ODD_MARGIN = [(800, 601), (337, 1001)]
SIGLIP = {'type': 'square', 'image_size': 384, 'crop': False, 'mean': [0.5] * 3, 'std': [0.5] * 3}
TOKENS = ImageTokens(per_tile=576, context='<image>', start='', end='', merge='spatial_unpad', tile_grid=(24, 24))
TABLE = {(336, 336): 1176, (672, 672): 2928, (640, 480): 2340, (800, 600): 2340, (1024, 768): 2340,
         (1000, 500): 1752, (500, 1000): 1776, (1920, 1080): 1948, (300, 1000): 2232}   # seed-systems §1


def make_image(kind, width, height):
    if kind == 'random':
        rng = np.random.default_rng(width * 7919 + height)
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, (x + y) / 2], -1).astype(np.uint8))


def expand2square(image, background):
    """LLaVA-1.5's expand2square, from its description: centred on a max(w, h) square canvas."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def oracle_clip():
    return CLIPImageProcessor(size={'shortest_edge': 336}, crop_size={'height': 336, 'width': 336},
                              resample=3, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def oracle_next(pinpoints=PINPOINTS):
    return LlavaNextImageProcessor(size={'shortest_edge': 336}, crop_size={'height': 336, 'width': 336},
                                   image_grid_pinpoints=pinpoints)


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == torch.float32
    return (a - b).abs().max().item()


both_kinds = pytest.mark.parametrize('kind', ['random', 'gradient'])


# ---------------------------------------------------------------- pixels

@both_kinds
@pytest.mark.parametrize('size', SIZES)
def test_square_matches_clip_and_siglip(size, kind):
    image = make_image(kind, *size)
    ours = build_image_processor({'type': 'square'}).process(image)
    assert ours.shape == (1, 3, 336, 336)
    assert max_diff(ours, oracle_clip()(image, return_tensors='pt').pixel_values) <= 1e-5
    siglip = SiglipImageProcessor(size={'height': 384, 'width': 384})
    ours = build_image_processor(SIGLIP).process(image)
    assert max_diff(ours, siglip(image, return_tensors='pt').pixel_values) <= 1e-5


@both_kinds
@pytest.mark.parametrize('size', SIZES)
def test_pad_matches_expand2square_then_clip(size, kind):
    image = make_image(kind, *size)
    ours = build_image_processor({'type': 'pad'}).process(image)
    want = oracle_clip()(expand2square(image, (122, 116, 104)), return_tensors='pt').pixel_values
    assert max_diff(ours, want) <= 1e-5


def test_pad_colour_and_centring_on_a_2to1_image():
    pad = build_image_processor({'type': 'pad'})
    assert pad.background == (122, 116, 104)
    red = Image.new('RGB', (200, 100), (255, 0, 0))
    canvas = np.asarray(pad.expand_to_square(red))
    assert canvas.shape == (200, 200, 3)
    assert (canvas[:50] == (122, 116, 104)).all() and (canvas[150:] == (122, 116, 104)).all()
    assert (canvas[50:150] == (255, 0, 0)).all()
    # through the processor: 672x336 -> 672 square -> 336, the image in rows 84..251
    pixels = pad.process(Image.new('RGB', (672, 336), (255, 0, 0)))[0]
    mean, std = torch.tensor(CLIP_MEAN)[:, None], torch.tensor(CLIP_STD)[:, None]
    grey = ((torch.tensor([122, 116, 104]) / 255)[:, None] - mean) / std
    red = ((torch.tensor([255, 0, 0]) / 255)[:, None] - mean) / std
    top, middle, bottom = pixels[:, :80].flatten(1), pixels[:, 90:246].flatten(1), pixels[:, 256:].flatten(1)
    assert torch.allclose(top, grey.expand_as(top), atol=1e-5)
    assert torch.allclose(bottom, grey.expand_as(bottom), atol=1e-5)
    assert torch.allclose(middle, red.expand_as(middle), atol=1e-5)


@both_kinds
@pytest.mark.parametrize('size', SIZES + ODD_MARGIN)
def test_anyres_matches_llava_next(size, kind):
    width, height = size
    image = make_image(kind, width, height)
    anyres = build_image_processor({'type': 'anyres'})
    want = oracle_next()(image, return_tensors='pt')
    assert want.image_sizes.tolist() == [[height, width]]
    ours = anyres.process(image)
    assert ours.shape[0] == anyres.num_tiles(width, height) == anyres.layout(width, height).tiles
    assert max_diff(ours, want.pixel_values[0]) <= 1e-5


def test_anyres_base_first_then_tiles_row_major():
    """Four colour quadrants on a 672x672 canvas: the base is the whole image, then TL, TR, BL, BR."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    image = Image.new('RGB', (672, 672))
    for k, colour in enumerate(colours):
        image.paste(colour, (336 * (k % 2), 336 * (k // 2), 336 * (k % 2 + 1), 336 * (k // 2 + 1)))
    anyres = build_image_processor({'type': 'anyres'})
    ours = anyres.process(image)
    assert anyres.grid(672, 672) == (2, 2) and ours.shape[0] == 5
    base = np.asarray(image.resize((336, 336), Image.BICUBIC))
    assert max_diff(ours[:1], anyres.to_tensor([Image.fromarray(base)])) == 0
    for k, colour in enumerate(colours):
        assert max_diff(ours[1 + k:2 + k], anyres.to_tensor([Image.new('RGB', (336, 336), colour)])) == 0


def test_anyres_pads_with_black():
    anyres = build_image_processor({'type': 'anyres'})
    tiles = anyres.tiles(Image.new('RGB', (1000, 500), (255, 255, 255)))   # 672x336 fitted on 672x336
    assert [t.size for t in tiles] == [(336, 336)] * 3
    tiles = anyres.tiles(Image.new('RGB', (1920, 1080), (255, 255, 255)))  # 672x378 on 672x672: bands
    top = np.asarray(tiles[1])
    assert (top[:100] == 0).all() and (top[200:] == 255).all()


# ---------------------------------------------------------------- best resolution and its ties

def test_best_resolution_ties_as_transformers():
    # a square image: (336, 672) and (672, 336) tie exactly (effective and wasted); the first one wins
    assert best_resolution(336, 336, PINPOINTS) == select_best_resolution((336, 336), PINPOINTS) == (336, 672)
    reverse = [[672, 336], [336, 672]]
    assert best_resolution(336, 336, reverse) == select_best_resolution((336, 336), reverse) == (672, 336)
    # equal effective pixels (the whole small image fits): the smaller canvas wins even when later
    later = [[672, 672], [336, 672]]
    assert best_resolution(100, 100, later) == select_best_resolution((100, 100), later) == (336, 672)
    assert best_resolution(672, 672, PINPOINTS) == (672, 672)
    anyres = build_image_processor({'type': 'anyres'})
    assert anyres.layout(336, 336) == ImageLayout(tiles=3, grid=(1, 2), size=(336, 336))   # 672 wide
    assert anyres.grid(336, 336) == (2, 1)   # (cols, rows)


@pytest.mark.parametrize('pinpoints', [PINPOINTS, PINPOINTS[::-1], [[336, 336], [672, 1008], [1008, 672]]])
def test_best_resolution_sweep(pinpoints):
    rng = random.Random(0)
    sizes = [(w, h) for w in range(16, 1400, 37) for h in range(16, 1400, 41)]
    sizes += [(rng.randint(1, 4000), rng.randint(1, 4000)) for _ in range(500)]
    for width, height in sizes:   # transformers takes (height, width)
        assert best_resolution(width, height, pinpoints) == select_best_resolution((height, width), pinpoints)


# ---------------------------------------------------------------- tokens per image

@pytest.fixture(scope='module')
def hf_processor():
    vocab = {'<unk>': 0, '<image>': 1, 'hi': 2}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token='<unk>',
                                        additional_special_tokens=['<image>'])
    # CLIP ViT-L/14-336 counts: 577 outputs (CLS) per tile, 'default' drops the CLS
    return LlavaNextProcessor(image_processor=oracle_next(), tokenizer=tokenizer, patch_size=14,
                              vision_feature_select_strategy='default', num_additional_image_tokens=1,
                              image_token='<image>')


@pytest.fixture(scope='module')
def hf_model():
    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=336, patch_size=14, projection_dim=16)
    text = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, vocab_size=64)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=PINPOINTS,
                             image_token_index=1)
    return LlavaNextForConditionalGeneration(config).eval()


@pytest.mark.parametrize('size', list(TABLE))
def test_tokens_per_image(size, hf_processor, hf_model):
    width, height = size
    anyres = build_image_processor({'type': 'anyres'})
    layout = anyres.layout(width, height)
    assert TOKENS.count(layout) == TABLE[size]
    image = Image.new('RGB', size, (20, 140, 230))
    ids = hf_processor(text='hi <image>', images=image, return_tensors='pt').input_ids[0]
    assert int((ids == 1).sum()) == TABLE[size]
    # our pixels through the tiny model: its tile split, its packed length and values = ours
    sizes = torch.tensor([[height, width]])
    with torch.no_grad():
        features = hf_model.get_image_features(anyres.process(image)[None], sizes, -2, 'default')
        packed, lengths = hf_model.pack_image_features(features, sizes, 'default', hf_model.image_newline)
        assert [len(f) for f in features] == [layout.tiles]
        assert lengths.tolist() == [TABLE[size]]
        ours = spatial_unpad(torch.cat(features), [layout], TOKENS, hf_model.image_newline)
    assert torch.equal(ours, packed)


def test_flat_merge_and_single_tile_counts():
    flat = ImageTokens(per_tile=576, merge='flat')
    assert build_image_processor({'type': 'anyres', 'merge': 'flat'}).merge == 'flat'
    assert flat.count(build_image_processor({'type': 'anyres'}).layout(800, 600)) == 5 * 576
    for name in ('square', 'pad'):
        processor = build_image_processor({'type': name})
        assert processor.merge == 'flat'
        assert processor.layout(1920, 1080) == ImageLayout(tiles=1)
        assert processor.num_tiles(1920, 1080) == 1 and processor.grid(1920, 1080) == (1, 1)
        assert flat.count(processor.layout(1920, 1080)) == 576


# ---------------------------------------------------------------- blank, layout, settings

@pytest.mark.parametrize('settings', [{'type': 'square'}, {'type': 'pad'}, {'type': 'anyres'}, SIGLIP])
def test_blank_is_one_white_tile(settings):
    processor = build_image_processor(settings)
    side = processor.image_size
    blank = processor.blank()
    assert blank.shape == (1, 3, side, side) and blank.dtype == torch.float32
    white = ((1 - torch.tensor(processor.mean)) / torch.tensor(processor.std))[:, None, None]
    assert torch.allclose(blank[0], white.expand(3, side, side), atol=1e-6)


def test_layout_from_header_size_matches_the_pixels(tmp_path):
    anyres = build_image_processor({'type': 'anyres'})
    for width, height in [(336, 336), (640, 480), (500, 1000), (300, 1000), (1000, 7), (2000, 2000)]:
        path = tmp_path / f'{width}x{height}.png'
        Image.new('RGB', (width, height)).save(path)
        with Image.open(path) as image:   # header only: the size, no decoding
            layout = anyres.layout(*image.size)
            cols, rows = anyres.grid(*image.size)
            pixels = anyres.process(image)
        assert layout.tiles == pixels.shape[0] == 1 + rows * cols
        assert layout.grid == (rows, cols) and layout.size == (width, height)


@pytest.mark.parametrize('settings', [
    {'type': 'square'}, {'type': 'pad', 'resample': 'bilinear'}, SIGLIP,
    {'type': 'anyres', 'merge': 'flat', 'grid_pinpoints': [[336, 336], [672, 1008]]}])
def test_settings_round_trip(settings):
    processor = build_image_processor(settings)
    again = build_image_processor(json.loads(json.dumps(processor.settings())))
    assert again == processor and hash(again) == hash(processor)
    assert again.settings() == processor.settings()
    assert {k: v for k, v in processor.settings().items() if k in settings} == settings
    image = make_image('gradient', 500, 300)
    assert torch.equal(again.process(image), processor.process(image))


def test_bad_settings_fail():
    with pytest.raises(ValueError, match='multiples'):
        build_image_processor({'type': 'anyres', 'grid_pinpoints': [[336, 500]]})
    with pytest.raises(ValueError, match='merge'):
        build_image_processor({'type': 'anyres', 'merge': 'spatial'})
    with pytest.raises(ValueError, match='resample'):
        build_image_processor({'type': 'square', 'resample': 'cubic'})


def test_jpeg_augment_and_modes():
    image = make_image('gradient', 640, 480)
    square = build_image_processor({'type': 'square'})
    first = square.process(image, rng=random.Random(3), jpeg_augment=True)
    assert torch.equal(first, square.process(image, rng=random.Random(3), jpeg_augment=True))
    assert not torch.equal(first, square.process(image))
    grey = image.convert('L')   # converted to RGB as transformers does
    anyres = build_image_processor({'type': 'anyres'})
    assert max_diff(anyres.process(grey), oracle_next()(grey, return_tensors='pt').pixel_values[0]) <= 1e-5
