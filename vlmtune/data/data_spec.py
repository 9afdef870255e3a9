"""What the data path needs from a model: template, image tokens per tile, tiling and tokenizer,
read from a checkpoint folder without loading weights; and the token count of a row."""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List

from PIL import Image

from ..model.official_load import read_config
from ..model.tokenizer_files import load_tokenizer
from .sample_encoding import encode_conversation
from .tiling import TilingConfig, count_tiles, tiles_per_image


def row_image_paths(row: dict) -> List[str]:
    images = row.get('image')
    if images is None:
        return []
    return [images] if isinstance(images, str) else list(images)


@dataclass
class DataSpec:
    tokenizer: object
    template: str
    num_image_token: int
    tiling: TilingConfig
    max_length: int = 4096
    system_message: str = None

    @classmethod
    def from_folder(cls, folder, max_tiles: int = None, max_length: int = 4096) -> 'DataSpec':
        cfg = read_config(folder)
        vcfg = cfg['vision_config']
        image_size = cfg.get('force_image_size') or vcfg['image_size']
        tiling = TilingConfig(image_size=image_size, min_num=cfg.get('min_dynamic_patch', 1),
                              max_num=max_tiles or cfg.get('max_dynamic_patch', 6),
                              use_thumbnail=bool(cfg.get('use_thumbnail', True)),
                              dynamic=bool(cfg.get('dynamic_image_size', True)))
        tokens = int((image_size // vcfg['patch_size']) ** 2 * cfg['downsample_ratio'] ** 2)
        return cls(load_tokenizer(Path(folder)), cfg['template'], tokens, tiling, max_length,
                   cfg.get('system_message'))

    def tiling_for(self, n_images: int) -> TilingConfig:
        return replace(self.tiling, max_num=tiles_per_image(self.tiling.max_num, max(1, n_images)))

    def tile_counts(self, row: dict, image_root) -> List[int]:
        """Tiles per image from the image headers only (no decoding)."""
        paths = row_image_paths(row)
        cfg = self.tiling_for(len(paths))
        counts = []
        for rel in paths:
            with Image.open(Path(image_root) / rel) as img:
                width, height = img.size
            counts.append(count_tiles(width, height, cfg.min_num, cfg.max_num, cfg.image_size, cfg.use_thumbnail)
                          if cfg.dynamic else 1)
        return counts

    def encode(self, row: dict, tile_counts: List[int], max_length: int = None):
        return encode_conversation(self.tokenizer, self.template, row['conversations'], tile_counts,
                                   self.num_image_token, max_length, self.system_message)

    def token_length(self, row: dict, image_root, max_length: int = None) -> int:
        return len(self.encode(row, self.tile_counts(row, image_root), max_length))


def token_length_fn_for_model(folder, image_root, max_tiles=None, max_length=4096):
    """For `data check --model`: row -> token count; over-long rows raise ValueError with the reason."""
    spec = DataSpec.from_folder(folder, max_tiles=max_tiles, max_length=max_length)
    return lambda row: spec.token_length(row, image_root, max_length)
