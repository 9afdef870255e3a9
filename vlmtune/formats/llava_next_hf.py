"""Layout `llava_next_hf`: transformers' `LlavaNextForConditionalGeneration` (LLaVA-NeXT: anyres
tiles, spatial_unpad merge with the learned `image_newline`). The maps, the record and what is refused
are described in `llava_common`; processor and template files in `llava_hf_processor`."""
from .llava_common import LlavaLayout
from .registry import register_layout

_LAYOUT = register_layout(LlavaLayout('llava_next_hf', 40, 'LlavaNextForConditionalGeneration', 'llava_next',
                                      'LlavaNextProcessor', 'LLaVA-NeXT', next_=True))
NAME, ORDER, ARCHITECTURE = _LAYOUT.NAME, _LAYOUT.ORDER, _LAYOUT.ARCHITECTURE
detect, read_spec, read_state, unsupported = _LAYOUT.detect, _LAYOUT.read_spec, _LAYOUT.read_state, _LAYOUT.unsupported
to_layout, from_layout, part_of = _LAYOUT.to_layout, _LAYOUT.from_layout, _LAYOUT.part_of
load_tokenizer, describe, write = _LAYOUT.load_tokenizer, _LAYOUT.describe, _LAYOUT.write
config_dict = _LAYOUT.config_dict
