"""The image half of `vlmtune data check`: each image file checked once (rows sharing an image reuse the
verdict), with PIL made strict while checking (truncated files and huge headers refused). Verdicts are
`RowRejected` (missing, empty, too large / small / thin, undecodable, truncated, escaping the root) or
a kept-with-warning kind (16-bit, EXIF-rotated).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from PIL import Image, ImageFile, UnidentifiedImageError

from .check_rows import CheckConfig, RowRejected
from .image.orientation import orientation
from .video import VideoError, video_info

HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@contextmanager
def strict_pil(cfg: CheckConfig) -> Iterator[None]:
    """Make PIL refuse truncated files and huge headers while checking."""
    old_truncated, old_max = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = cfg.max_image_pixels
    try:
        with warnings.catch_warnings():
            # Our own header check rejects these; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = old_truncated, old_max


class ImageChecker:
    """Checks image files once each; rows sharing an image reuse the verdict."""

    def __init__(self, root: Path, cfg: CheckConfig):
        self.root = root
        self.cfg = cfg
        self._verdicts: dict[str, RowRejected | str | None] = {}
        self._videos: dict[str, RowRejected | dict] = {}

    def check_video(self, row: dict, number: int) -> dict:
        """A video row's file: decodable, at least min_frames frames, a clip inside it; {'frames', 'seconds'}."""
        rel, clip = row["video"], row.get("clip")
        if not isinstance(rel, str):
            raise RowRejected("bad_video_field", f"'video' must be a path string, got {rel!r}"[:120])
        full = str(self.root / os.path.normpath(rel))
        if full not in self._videos:
            try:
                self._videos[full] = video_info(full)
            except VideoError as exc:
                self._videos[full] = RowRejected("video_unreadable", f"{exc}; re-encode it (mp4 / H.264) or "
                                                                     "drop the row")
        info = self._videos[full]
        if isinstance(info, RowRejected):
            raise info
        if info["frames"] < self.cfg.min_frames:
            raise RowRejected("video_too_short", f"{rel}: {info['frames']} frame(s), fewer than min_frames "
                                                 f"{self.cfg.min_frames}; drop the row or lower min_frames")
        if clip is not None:
            if not isinstance(clip, list) or len(clip) != 2 or not all(isinstance(c, (int, float)) for c in clip) \
                    or not 0 <= clip[0] < clip[1]:
                raise RowRejected("bad_clip", f"clip {clip!r} is not [start, end] in seconds with 0 <= start < end")
            if info["seconds"] is not None and clip[1] > info["seconds"]:
                raise RowRejected("bad_clip", f"clip {clip} runs past the end of {rel} ({info['seconds']:.2f} s)")
        return info

    def video(self, rel: str) -> dict:
        return self._videos[str(self.root / os.path.normpath(rel))]

    def rotated(self, rel: str) -> bool:
        return self._verdicts.get(str(self.root / os.path.normpath(rel))) == "image_exif_rotated"

    def check(self, rel: str) -> str | None:
        """Returns a warning kind or None; raises RowRejected."""
        norm = os.path.normpath(rel)
        if os.path.isabs(rel) or norm == ".." or norm.startswith(".." + os.sep):
            raise RowRejected("image_path_escape", f"image path {rel!r} escapes the image root "
                              f"{self.root}; use a path inside the root without '..'")
        full = str(self.root / norm)
        if full not in self._verdicts:
            try:
                self._verdicts[full] = self._inspect(rel, full)
            except RowRejected as rejected:
                self._verdicts[full] = rejected
        verdict = self._verdicts[full]
        if isinstance(verdict, RowRejected):
            raise verdict
        return verdict

    def _inspect(self, rel: str, full: str) -> str | None:
        if not os.path.isfile(full):
            raise RowRejected("image_missing", f"image {rel!r} not found under {self.root}; fix "
                              "the path or the image root")
        if os.path.getsize(full) == 0:
            raise RowRejected("image_empty", f"image {rel!r} is an empty (0-byte) file; "
                              "re-download it or drop the row")
        try:
            with Image.open(full) as im:
                self._check_size(rel, *im.size)  # header only: before any decoding
                rotated = orientation(im) != 1
                im.load()
                mode = im.mode
                im.convert("RGB").close()
        except RowRejected:
            raise
        except Exception as e:  # broken files raise all sorts (SyntaxError, zlib.error, ...)
            raise self._decode_failure(rel, e) from None
        if mode in HIGH_BIT_DEPTH_MODES:
            return "image_16bit"
        return "image_exif_rotated" if rotated else None

    def _decode_failure(self, rel: str, e: Exception) -> RowRejected:
        if isinstance(e, Image.DecompressionBombError):  # PIL's own guard fired first
            return RowRejected("image_too_large", f"image {rel!r} exceeds max_image_pixels="
                               f"{self.cfg.max_image_pixels:,} ({e}); downscale it")
        if isinstance(e, UnidentifiedImageError):
            return RowRejected("image_undecodable", f"image {rel!r} is not in a readable image "
                               "format; replace the file or drop the row")
        if isinstance(e, OSError) and "truncated" in str(e).lower():
            return RowRejected("image_truncated", f"image {rel!r} is truncated ({e}); "
                               "re-download or re-encode it")
        return RowRejected("image_undecodable", f"image {rel!r} cannot be decoded "
                           f"({type(e).__name__}: {e}); replace the file or drop the row")

    def _check_size(self, rel: str, width: int, height: int) -> None:
        cfg = self.cfg
        if width * height > cfg.max_image_pixels:
            raise RowRejected("image_too_large", f"image {rel!r} is {width}x{height} "
                              f"({width * height:,} pixels), over max_image_pixels="
                              f"{cfg.max_image_pixels:,}; downscale it")
        if min(width, height) < cfg.min_side:
            raise RowRejected("image_too_small", f"image {rel!r} is {width}x{height}, smaller than "
                              f"min_side={cfg.min_side}; drop the row or use a real image")
        if max(width, height) / min(width, height) > cfg.max_aspect:
            raise RowRejected("image_bad_aspect", f"image {rel!r} is {width}x{height}, aspect ratio "
                              f"over max_aspect={cfg.max_aspect:g}; crop it or drop the row")
