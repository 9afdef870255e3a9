"""Image paths in canonical rows: normalising them, checking them, writing in-memory images out."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from datasets_proc.errors import ConversionError

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSION_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


def normalise_image_path(path: Any, image_root: str | os.PathLike | None = None) -> str:
    """Clean one source image path and, when an image root is known, check the file is there.

    Paths stay relative to the image root (forward slashes, no leading ``./``). An absolute
    path under the root is made relative; one outside it is rejected, since canonical
    paths are resolved against the root by the trainer.
    """
    if not isinstance(path, str) or not path.strip():
        raise ConversionError("missing image path")
    cleaned = path.strip().replace("\\", "/")
    if os.path.isabs(cleaned):
        if image_root is None:
            return cleaned
        root = Path(image_root).resolve()
        try:
            cleaned = Path(cleaned).resolve().relative_to(root).as_posix()
        except ValueError:
            raise ConversionError("image outside image root", path) from None
    cleaned = str(PurePosixPath(cleaned))
    if image_root is not None and not (Path(image_root) / cleaned).is_file():
        raise ConversionError("image file not found", cleaned)
    return cleaned


def safe_file_stem(row_id: str) -> str:
    """A file-name-safe stem derived from a row id (stable: same id, same name)."""
    stem = _UNSAFE_NAME_CHARS.sub("_", row_id).strip("._")
    return stem or "row"


def _image_format(data: bytes) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except (UnidentifiedImageError, OSError):
        return None


def write_image_bytes(data: bytes, out_dir: str | os.PathLike, stem: str) -> Path:
    """Write encoded image bytes unchanged (no re-encoding), named ``stem`` + the format's extension."""
    image_format = _image_format(data)
    if image_format is None:
        raise ConversionError("unreadable image bytes")
    extension = _EXTENSION_BY_FORMAT.get(image_format)
    if extension is None:
        # Formats trainers may not read: re-encode losslessly as PNG.
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return save_pil_image(image, out_dir, stem)
    target = Path(out_dir) / f"{stem}{extension}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def save_pil_image(image: Any, out_dir: str | os.PathLike, stem: str) -> Path:
    """Save a decoded PIL image: JPEG sources stay JPEG (quality 95), everything else as PNG."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        target = Path(out_dir) / f"{stem}.jpg"
        image.save(target, format="JPEG", quality=95)
    else:
        target = Path(out_dir) / f"{stem}.png"
        image.save(target, format="PNG")
    return target


def path_relative_to_root(path: Path, image_root: str | os.PathLike) -> str:
    try:
        return path.resolve().relative_to(Path(image_root).resolve()).as_posix()
    except ValueError:
        raise ConversionError("image outside image root", str(path)) from None
