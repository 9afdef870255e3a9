"""Composite configuration of InternVL chat models (`internvl_chat`): vision + LLM + connector.

Self-contained: copied verbatim into exported checkpoint folders.
"""
import copy

from transformers import LlamaConfig
from transformers.configuration_utils import PretrainedConfig

from .configuration_intern_vit import InternVisionConfig
from .configuration_internlm2 import InternLM2Config

try:  # Qwen2 arrived in transformers 4.37, Phi3 in 4.40.
    from transformers import Qwen2Config
except ImportError:  # pragma: no cover
    Qwen2Config = None
try:
    from transformers import Phi3Config
except ImportError:  # pragma: no cover
    Phi3Config = None

try:  # Qwen3 / Qwen3-MoE arrived in transformers 4.51 (InternVL3.5); older ones use the copies shipped here
    from transformers import Qwen3Config, Qwen3MoeConfig
except ImportError:
    try:
        from .qwen3 import Qwen3Config
        from .qwen3_moe import Qwen3MoeConfig
    except ImportError:  # transformers < 4.48, or not in an exported folder
        Qwen3Config = Qwen3MoeConfig = None

try:  # native MoE LLMs (what MoE-tuned Qwen2 / Llama export to): transformers 4.40 / 4.36
    from transformers import MixtralConfig, Qwen2MoeConfig
except ImportError:  # pragma: no cover
    MixtralConfig = Qwen2MoeConfig = None

LLM_CONFIG_CLASSES = {
    'LlamaForCausalLM': LlamaConfig,
    'InternLM2ForCausalLM': InternLM2Config,
    'Qwen2ForCausalLM': Qwen2Config,
    'Phi3ForCausalLM': Phi3Config,
    'Qwen3ForCausalLM': Qwen3Config,
    'Qwen3MoeForCausalLM': Qwen3MoeConfig,
    'Qwen2MoeForCausalLM': Qwen2MoeConfig,
    'MixtralForCausalLM': MixtralConfig,
}


def llm_config_from_dict(llm_config: dict) -> PretrainedConfig:
    arch = (llm_config.get('architectures') or [None])[0]
    if arch not in LLM_CONFIG_CLASSES:
        raise ValueError(f'Unsupported llm_config.architectures[0] {arch!r}; '
                         f'supported: {sorted(LLM_CONFIG_CLASSES)}')
    cls = LLM_CONFIG_CLASSES[arch]
    if cls is None:
        raise ValueError(f'{arch} needs a newer transformers than the one installed '
                         f'(Qwen3 / Qwen3-MoE: 4.48 with this folder\'s qwen3.py, or 4.51+)')
    return cls(**llm_config)


class InternVLChatConfig(PretrainedConfig):
    model_type = 'internvl_chat'
    is_composition = True

    def __init__(self, vision_config=None, llm_config=None, use_backbone_lora=0, use_llm_lora=0,
                 select_layer=-1, force_image_size=None, downsample_ratio=0.5, template=None,
                 dynamic_image_size=False, use_thumbnail=False, ps_version='v1', min_dynamic_patch=1,
                 max_dynamic_patch=6, **kwargs):
        super().__init__(**kwargs)
        vision_config = copy.deepcopy(vision_config) if vision_config else {'architectures': ['InternVisionModel']}
        llm_config = copy.deepcopy(llm_config) if llm_config else {'architectures': ['InternLM2ForCausalLM']}
        if isinstance(vision_config, PretrainedConfig):
            vision_config = vision_config.to_dict()
        if isinstance(llm_config, PretrainedConfig):
            llm_config = llm_config.to_dict()
        self.vision_config = InternVisionConfig(**vision_config)
        self.llm_config = llm_config_from_dict(llm_config)
        self.use_backbone_lora = use_backbone_lora
        self.use_llm_lora = use_llm_lora
        self.select_layer = select_layer
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.template = template
        self.dynamic_image_size = dynamic_image_size
        self.use_thumbnail = use_thumbnail
        self.ps_version = ps_version
        self.min_dynamic_patch = min_dynamic_patch
        self.max_dynamic_patch = max_dynamic_patch
        # Official checkpoints never tie the LLM's input and output embeddings.
        self.tie_word_embeddings = False
        self.llm_config.tie_word_embeddings = False
        self.hidden_size = self.llm_config.hidden_size

    def to_dict(self):
        output = copy.deepcopy(self.__dict__)
        output['vision_config'] = self.vision_config.to_dict()
        output['llm_config'] = self.llm_config.to_dict()
        output['model_type'] = self.__class__.model_type
        for key in [k for k in output if k.startswith('_') and k != '_commit_hash']:
            output.pop(key)
        return output
