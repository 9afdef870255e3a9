"""Specs of the tiny parts the `tiny_parts` fixture writes."""


def parts_spec(parts, **overrides):
    """A from-parts model spec for `tiny_parts`."""
    spec = dict(vision_tower=dict(type='intern_vit', pretrained=str(parts['vision_tower'])),
                connector=dict(type='pixel_shuffle_mlp'), llm=dict(type='qwen2', pretrained=str(parts['llm'])),
                image_processor=dict(type='internvl_dynamic', image_size=56, max_tiles=2),
                template=dict(type='internvl2_5'))
    spec.update(overrides)
    return spec
