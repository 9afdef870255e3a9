"""What the data path needs from a model: tokenizer, template, image processor and image tokens.
The model spec builds it (`ModelSpec.data_spec`); the data layer never reads a checkpoint itself."""
from dataclasses import dataclass
from pathlib import Path
from typing import List

from PIL import Image

from .image import ImageLayout, ImageTokens
from .image.orientation import size_under
from .sample_encoding import encode_conversation
from .templates import Template, get_template


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
    exif: str = 'ignore'          # EXIF orientation rule (data/image/orientation.py)
    uint8_pixels: bool = False    # uint8 tiles where the processor can (the model normalises them)

    @property
    def pixels_as_uint8(self) -> bool:
        return self.uint8_pixels and getattr(self.image_processor, 'uint8_pixels', False)

    def __post_init__(self):
        # Templates that render with the tokenizer's own chat_template keep the tokenizer.
        self.template = get_template(self.template).bind(self.tokenizer)

    def image_layouts(self, row: dict, image_root) -> List[ImageLayout]:
        """What each image becomes, from the image headers only (no decoding)."""
        paths = row_image_paths(row)
        layouts = []
        for rel in paths:
            with Image.open(Path(image_root) / rel) as img:
                layouts.append(self.image_processor.layout(*size_under(img, self.exif), n_images=len(paths)))
        return layouts

    def encode(self, row: dict, images: list, max_length: int = None):
        """images: per image an ImageLayout (or a tile count)."""
        return encode_conversation(self.tokenizer, self.template, row['conversations'], images,
                                   self.image_tokens, max_length, self.system_message)

    def token_length(self, row: dict, image_root, max_length: int = None) -> int:
        return len(self.encode(row, self.image_layouts(row, image_root), max_length))

    def length_fn(self, image_root, max_length: int = None):
        """For `data check --model`: row -> token count; rows that cannot be trained raise SampleRejected
        (a ValueError) with the reason and its `kind` (too_long, labels_masked, ...)."""
        return lambda row: self.token_length(row, image_root, max_length)
