"""Processor, tokenizer, chat-template and generation files of the llava-hf layouts (`llava_hf`,
`llava_next_hf`; the config and key maps are in `llava_common`).

* Image processor (`preprocessor_config.json`), from the built processor's own fields (defaults
  included; vlmtune/data/image):
  - `square` -> `CLIPImageProcessor`: shortest side + centre crop (`crop` true), or a plain resize to
    S x S (`crop` false, SigLIP style); mean/std and resample as set (CLIP's by default).
  - `pad` (LLaVA-1.5's expand2square, then `square`) -> the same `CLIPImageProcessor` + `do_pad: true`.
    No image processor of transformers 4.48 pads to a square (`LlavaNextImageProcessor.do_pad` pads the
    tile batch): 4.48 crops the centre square of a non-square image instead of letterboxing it, so its
    pixels differ from training for every non-square image (square images: equal; measured in normalised
    units at 56 px: 640x480 gradient max 2.04 / mean 0.41, 112x56 noise max 3.23 / mean 0.97). Newer
    transformers (4.57.6 and 5.24.0 checked) has `LlavaImageProcessor`, which reads `do_pad: true` from
    this file and pads with int(mean * 255) like training (within 1e-5):
    `LlavaImageProcessor.from_pretrained(folder)`.
  - `anyres` -> `LlavaNextImageProcessor`; pinpoints are (height, width) on both sides, in their order
    (tie-breaks included).
* Processor (`processor_config.json`): patch_size, vision_feature_select_strategy,
  num_additional_image_tokens (1 for CLIP's CLS, 0 for SigLIP) and the image token; the processor then
  expands each image token to the count the model computes.
* Chat template: our templates' `processor_chat_template` with the image token (an image part or a
  `<image>` tag becomes the one token the processor repeats), written to `chat_template.json` (the
  processor's) and to the tokenizer (LMDeploy's `HFChatTemplate` reads that one). `hf_chat_template`
  specs write their Jinja for the processor and keep the tokenizer's own template where it has one.
"""
import json
from pathlib import Path

import transformers

from ..data.image.tokens import IMAGE_TAG
from .tokenizers import save_tokenizer

IMAGE_TOKEN = IMAGE_TAG  # llava-hf's image token is the tag itself
HF_CHAT_TEMPLATE = 'hf_chat_template'   # the template type of bases that carry a Jinja chat_template
FALLBACK_TEMPLATE = 'plain'             # a base with no chat template at all (LLaVA's stage-1 format)
# Our image-processor settings come from the processors themselves (vlmtune/data/image): one source.
RESAMPLE_CODES = {'nearest': 0, 'lanczos': 1, 'bilinear': 2, 'bicubic': 3}  # PIL's codes, as the HF configs store them
FLAT_TYPES, ANYRES = ('square', 'pad'), 'anyres'


def built(settings: dict):
    """The processor our settings describe (its defaults filled in)."""
    from ..data.image import build_image_processor
    return build_image_processor(settings)


def processor_problem(settings: dict, next_: bool):
    """Why llava-hf's image processor cannot do what these settings say, or None."""
    kind = settings['type']
    if next_ and kind != ANYRES:
        return f"image_processor {kind!r} (llava_next_hf always tiles: it holds 'anyres'; use llava_hf)"
    if not next_ and kind not in FLAT_TYPES:
        return f'image_processor {kind!r} (llava_hf holds {list(FLAT_TYPES)}' + \
            ("; use llava_next_hf)" if kind == ANYRES else ')')
    processor = built(settings)
    if next_ and processor.merge != 'spatial_unpad':
        return f"anyres merge {processor.merge!r} (LlavaNext only does 'spatial_unpad' with image_newline)"
    if processor.resample not in RESAMPLE_CODES:
        return f'image_processor resample {processor.resample!r} (the HF configs store {sorted(RESAMPLE_CODES)})'
    return None


def preprocessor_config(settings: dict, processor_class: str) -> dict:
    """preprocessor_config.json for our image-processor settings (see the module docstring)."""
    processor = built(settings)
    size, crop = processor.image_size, processor.crop
    out = {'image_processor_type': 'LlavaNextImageProcessor' if settings['type'] == ANYRES else 'CLIPImageProcessor',
           'processor_class': processor_class, 'do_resize': True,
           'size': {'shortest_edge': size} if crop else {'height': size, 'width': size},
           'resample': RESAMPLE_CODES[processor.resample], 'do_center_crop': crop,
           'crop_size': {'height': size, 'width': size}, 'do_rescale': True, 'rescale_factor': 1 / 255,
           'do_normalize': True, 'image_mean': list(processor.mean), 'image_std': list(processor.std),
           'do_convert_rgb': True}
    if settings['type'] == 'pad':
        out['do_pad'] = True  # 4.48's CLIPImageProcessor ignores it; newer LlavaImageProcessor pads
    if settings['type'] == ANYRES:  # both (height, width), as transformers reads them
        out.update(do_pad=True, image_grid_pinpoints=[list(p) for p in processor.grid_pinpoints])
    return out


def image_processor_settings(pre: dict, next_: bool, vision_image_size: int) -> dict:
    """A hub folder's preprocessor_config.json -> our settings (defaults left out)."""
    if not pre:
        return {'type': ANYRES if next_ else 'square', 'image_size': vision_image_size}
    size, crop = pre.get('size') or {}, pre.get('crop_size') or {}
    center = pre.get('do_center_crop', 'shortest_edge' in size)
    side = crop.get('height') if center and crop else size.get('shortest_edge') or size.get('height')
    kind = pre.get('image_processor_type', '').replace('Fast', '')
    if next_ != (kind == 'LlavaNextImageProcessor'):
        raise ValueError(f'preprocessor_config.json: {kind or "no image_processor_type"} is not this layout\'s '
                         f'image processor')
    if next_:
        out = {'type': ANYRES, 'image_size': side or vision_image_size, 'merge': 'spatial_unpad'}
        if pre.get('image_grid_pinpoints'):  # (height, width), as ours; absent: the 1.6 list, both sides' default
            out['grid_pinpoints'] = [list(p) for p in pre['image_grid_pinpoints']]
    else:
        out = {'type': 'pad' if pre.get('do_pad') else 'square', 'image_size': side or vision_image_size}
        if not (center and 'shortest_edge' in size):
            out['crop'] = False
    defaults = built({'type': out['type'], 'image_size': out['image_size']})
    for ours, theirs in (('mean', 'image_mean'), ('std', 'image_std')):
        if theirs in pre and [round(x, 6) for x in pre[theirs]] != [round(x, 6) for x in getattr(defaults, ours)]:
            out[ours] = list(pre[theirs])
    codes = {v: k for k, v in RESAMPLE_CODES.items()}
    if pre.get('resample', 3) != 3:
        out['resample'] = codes.get(pre['resample'], 'bicubic')
    return out


def processor_config(processor_class: str, patch_size: int, strategy: str, extra_tokens: int, image_token: str):
    return {'processor_class': processor_class, 'patch_size': patch_size, 'vision_feature_select_strategy': strategy,
            'num_additional_image_tokens': extra_tokens, 'image_token': image_token}


# --- templates ------------------------------------------------------------------------------------
def template_info(spec, tokenizer=None) -> dict:
    """{tokenizer, processor: chat templates, image_token, end_token (None: the tokenizer's eos)}."""
    if spec.template['type'] == HF_CHAT_TEMPLATE:
        jinja = spec.template.get('chat_template')
        if not jinja:
            raise ValueError('template hf_chat_template needs its chat_template (Jinja) setting')
        own = getattr(tokenizer, 'chat_template', None) if tokenizer is not None else None
        return {'tokenizer': own if isinstance(own, str) and own else jinja, 'processor': jinja,
                'image_token': IMAGE_TOKEN, 'end_token': None}
    template = spec.build_template()
    start, context, end = template.image_tokens
    if start or end:
        raise ValueError(f'template {template.name!r} wraps images in {start!r}...{end!r}; the llava-hf processor '
                         f'repeats one image token with nothing around it')
    jinja = template.processor_chat_template(spec.system_message, image_token=context)
    return {'tokenizer': jinja, 'processor': jinja, 'image_token': context, 'end_token': template.end_token}


def template_from_files(folder: Path) -> dict:
    """A hub folder's template by convention: the processor's chat template (it renders image parts),
    else the tokenizer's, else LLaVA's plain format."""
    folder = Path(folder)
    jinja = None
    if (folder / 'chat_template.jinja').exists():
        jinja = (folder / 'chat_template.jinja').read_text(encoding='utf-8')
    for name in ('chat_template.json', 'processor_config.json', 'tokenizer_config.json'):
        if jinja is None and (folder / name).exists():
            value = json.loads((folder / name).read_text(encoding='utf-8')).get('chat_template')
            jinja = value if isinstance(value, str) and value else None
    return {'type': HF_CHAT_TEMPLATE, 'chat_template': jinja} if jinja else {'type': FALLBACK_TEMPLATE}


# --- writing --------------------------------------------------------------------------------------
def generation_config(spec, tokenizer, end_token) -> dict:
    """Stop on the LLM's eos and the template's end-of-turn token."""
    llm = spec.llm_config()
    eos = llm.eos_token_id if isinstance(llm.eos_token_id, list) else [llm.eos_token_id]
    eos = [e for e in eos if e is not None]
    end_id = tokenizer.convert_tokens_to_ids(end_token) if end_token else None
    if end_id is not None and end_id != tokenizer.unk_token_id and end_id not in eos:
        eos.append(end_id)
    return {'bos_token_id': llm.bos_token_id, 'eos_token_id': eos, 'pad_token_id': tokenizer.pad_token_id,
            'transformers_version': transformers.__version__}


def write_files(staging: Path, spec, tokenizer, info: dict, processor_class: str, processor: dict) -> None:
    """Tokenizer (+ chat template), chat_template.json, preprocessor/processor configs, generation config."""
    save_tokenizer(tokenizer, staging, info['tokenizer'])
    (staging / 'chat_template.json').write_text(json.dumps({'chat_template': info['processor']}, indent=2,
                                                           ensure_ascii=False), encoding='utf-8')
    pre = preprocessor_config(spec.image_processor, processor_class)
    for name, data in (('preprocessor_config.json', pre), ('processor_config.json', processor),
                       ('generation_config.json', generation_config(spec, tokenizer, info['end_token']))):
        (staging / name).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding='utf-8')


README = """# {title} checkpoint (transformers' `{arch}`)

`vlmtune` wrote this folder; transformers loads it without remote code (4.48 names; newer versions
convert them on load):

```python
from transformers import AutoProcessor, {arch}

model = {arch}.from_pretrained(folder).eval()
processor = AutoProcessor.from_pretrained(folder)
messages = [{{'role': 'user', 'content': [{{'type': 'image'}}, {{'type': 'text', 'text': 'What is in the image?'}}]}}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=image, text=prompt, return_tensors='pt')
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
```

* The chat template renders the training prompt (system message included); the processor expands
  the image token into as many tokens as the model computes.
{notes}* config.json's `vlmtune` entry keeps what this layout has no field for (template, processor
  settings); `vlmtune` reads the folder back exactly.
"""
PAD_NOTE = ("* Training padded images to a square (LLaVA's expand2square, mean-colour border). transformers "
            "4.48's CLIPImageProcessor\n  cannot: it crops the centre square of a non-square image instead. "
            "Newer transformers pads like\n  training with `processor.image_processor = "
            "LlavaImageProcessor.from_pretrained(folder)` (it reads `do_pad: true`).\n")


SIGLIP_NOTE = ("* LMDeploy 0.12.1 does not serve SigLIP llava-hf folders correctly: its PyTorch engine builds CLIP "
               "towers only,\n  and its preprocessor counts a CLS token for 'full' (one image token too many).\n")


def readme(title: str, arch: str, spec) -> str:
    notes = (PAD_NOTE if spec.image_processor['type'] == 'pad' else '') + \
        (SIGLIP_NOTE if spec.vision_tower['type'] == 'siglip' else '')
    return README.format(title=title, arch=arch, notes=notes)
