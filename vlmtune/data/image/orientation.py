"""EXIF orientation: one rule per model, applied wherever its images are opened (training, data check,
every serving path). 'ignore' (the default) is the official InternVL preprocessing and LMDeploy's: the
pixels as stored; 'transpose' turns them upright first, as vLLM and phone galleries do. A rotated phone
photo gets another tile grid (and prompt length) under each rule, so train and serve must agree.
The rule is the image processor's `exif` setting (`image_processor.exif` in a spec, the dataset's
`exif=` in a recipe); the internvl layout records a non-default rule as `exif_orientation`."""
from PIL import Image, ImageOps

RULES = ('ignore', 'transpose')
ORIENTATION_TAG = 0x0112
SWAPS_SIDES = {5, 6, 7, 8}  # 90 / 270 degree orientations


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f'exif rule {rule!r}: choose {" or ".join(RULES)}')
    return rule


def orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright / absent)."""
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block reads as none, as PIL's own loaders treat it
        return 1


def apply_rule(image: Image.Image, rule: str) -> Image.Image:
    if check_rule(rule) == 'transpose' and orientation(image) != 1:
        return ImageOps.exif_transpose(image)
    return image


def size_under(image: Image.Image, rule: str) -> tuple:
    """(width, height) the model sees, from the header only."""
    width, height = image.size
    if check_rule(rule) == 'transpose' and orientation(image) in SWAPS_SIDES:
        return height, width
    return width, height
