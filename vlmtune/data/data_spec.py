"""What the data path needs from a model: tokenizer, template, image processor and image tokens.
The model spec builds it (`ModelSpec.data_spec`); the data layer never reads a checkpoint itself."""
from dataclasses import dataclass
from pathlib import Path
from typing import List

from PIL import Image

from .image import ImageLayout, ImageTokens
from .image.orientation import size_under
from .rejects import SampleRejected
from .sample_encoding import encode_conversation
from .templates import Template, get_template
from .video import VideoError, expand_video_tag, video_info

ONE_TILE = ImageLayout(tiles=1)


def row_image_paths(row: dict) -> List[str]:
    images = row.get('image')
    if images is None:
        return []
    return [images] if isinstance(images, str) else list(images)


def row_video(row: dict):
    """The row's video path, as the official dispatch finds it: only when the row has no image."""
    return None if row_image_paths(row) else (row.get('video') or None)


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
    min_frames: int = 8           # video rows: frames drawn per sample, uniformly in [min_frames, max_frames]
    max_frames: int = 32

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

    def video_row(self, row: dict, frames: int) -> dict:
        """A video row with its `<video>` tag expanded to `frames` numbered frames."""
        return dict(row, conversations=expand_video_tag(row['conversations'], frames))

    def token_length(self, row: dict, image_root, max_length: int = None) -> int:
        video = row_video(row)
        if video is None:
            return len(self.encode(row, self.image_layouts(row, image_root), max_length))
        self.check_video(Path(image_root) / video, row.get('clip'))
        # the longest draw, so that every draw fits max_length (a GIF or a short folder may give fewer)
        return len(self.encode(self.video_row(row, self.max_frames), [ONE_TILE] * self.max_frames, max_length))

    def check_video(self, path: Path, clip=None) -> dict:
        if not hasattr(self.image_processor, 'single_tile'):
            raise SampleRejected(f'video rows need an image processor with one tile per frame (InternVL\'s); '
                                 f'{type(self.image_processor).__name__} has none')
        try:
            info = video_info(path)
        except VideoError as exc:
            raise SampleRejected(str(exc)) from None
        if clip is not None and (not isinstance(clip, (list, tuple)) or len(clip) != 2 or not clip[0] < clip[1]):
            raise SampleRejected(f'{path}: clip {clip!r} is not [start, end] in seconds with start < end')
        if clip is not None and info['seconds'] is not None and clip[1] > info['seconds']:
            raise SampleRejected(f'{path}: clip {list(clip)} runs past the video\'s end ({info["seconds"]:.2f} s)')
        if info['frames'] < self.min_frames:
            raise SampleRejected(f'{path}: {info["frames"]} frame(s), fewer than min_frames {self.min_frames}; '
                                 f'drop the row or lower min_frames')
        return info

    def length_fn(self, image_root, max_length: int = None):
        """For `data check --model`: row -> token count; rows that cannot be trained raise SampleRejected
        (a ValueError) with the reason and its `kind` (too_long, labels_masked, ...)."""
        return lambda row: self.token_length(row, image_root, max_length)
