"""What the data path needs from a model: tokenizer, template, image processor and image tokens.
The model spec builds it (`ModelSpec.data_spec`); the data layer never reads a checkpoint itself."""
from dataclasses import dataclass
from pathlib import Path
from typing import List

from PIL import Image

from .image import ImageTokens
from .sample_encoding import encode_conversation
from .templates import Template


def row_image_paths(row: dict) -> List[str]:
    images = row.get('image')
    if images is None:
        return []
    return [images] if isinstance(images, str) else list(images)


@dataclass
class DataSpec:
    tokenizer: object
    template: Template
    image_processor: object
    image_tokens: ImageTokens
    max_length: int = 4096
    system_message: str = None
    jpeg_augment: bool = False

    def tile_counts(self, row: dict, image_root) -> List[int]:
        """Tiles per image from the image headers only (no decoding)."""
        paths = row_image_paths(row)
        counts = []
        for rel in paths:
            with Image.open(Path(image_root) / rel) as img:
                counts.append(self.image_processor.num_tiles(*img.size, n_images=len(paths)))
        return counts

    def encode(self, row: dict, tile_counts: List[int], max_length: int = None):
        return encode_conversation(self.tokenizer, self.template, row['conversations'], tile_counts,
                                   self.image_tokens, max_length, self.system_message)

    def token_length(self, row: dict, image_root, max_length: int = None) -> int:
        return len(self.encode(row, self.tile_counts(row, image_root), max_length))

    def length_fn(self, image_root, max_length: int = None):
        """For `data check --model`: row -> token count; over-long rows raise ValueError with the reason."""
        return lambda row: self.token_length(row, image_root, max_length)
