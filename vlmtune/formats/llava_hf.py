"""Layout `llava_hf`: transformers' `LlavaForConditionalGeneration` (LLaVA-1.5: CLIP/SigLIP +
mlp2x_gelu + a causal LM, square or pad preprocessing). The maps, the record and what is refused are
described in `llava_common`; processor and template files in `llava_hf_processor`."""
from .llava_common import LlavaLayout
from .registry import register_layout

_LAYOUT = register_layout(LlavaLayout('llava_hf', 30, 'LlavaForConditionalGeneration', 'llava', 'LlavaProcessor',
                                      'LLaVA', next_=False))
NAME, ORDER, ARCHITECTURE = _LAYOUT.NAME, _LAYOUT.ORDER, _LAYOUT.ARCHITECTURE
detect, read_spec, read_state, unsupported = _LAYOUT.detect, _LAYOUT.read_spec, _LAYOUT.read_state, _LAYOUT.unsupported
to_layout, from_layout, part_of = _LAYOUT.to_layout, _LAYOUT.from_layout, _LAYOUT.part_of
load_tokenizer, describe, write = _LAYOUT.load_tokenizer, _LAYOUT.describe, _LAYOUT.write
config_dict = _LAYOUT.config_dict
