"""The composed vision-language model: vision tower -> connector -> LLM, each from its registry.

Parameter names are the official InternVL ones (`vision_model.`, `mlp1.`, `language_model.`), so
official folders load with no key mapping. Prompt building, image-token splicing, the loss and the
chat/generate semantics are borrowed from the exported remote code (`remote/modeling_internvl_chat.py`),
so the package and an exported folder cannot drift apart.
"""
import torch
from torch import nn

from .connector import REGISTRY as CONNECTORS
from .llm import REGISTRY as LLMS
from ..formats.internvl_remote.configuration_internvl_chat import InternVLChatConfig
from ..formats.internvl_remote.conversation import get_conv_template
from ..formats.internvl_remote.modeling_internvl_chat import IMG_CONTEXT_TOKEN, InternVLChatModel
from .vision_tower import REGISTRY as VISION_TOWERS


def default_attn_implementation() -> str:
    """flash-attn when installed and a GPU is present, else PyTorch SDPA."""
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401
            return 'flash_attention_2'
        except ImportError:
            pass
    return 'sdpa'


class VisionLanguageModel(nn.Module):
    connector_name = 'internvl_mlp1'

    def __init__(self, config: InternVLChatConfig, attn_implementation: str = None):
        super().__init__()
        self.config = config
        vcfg, lcfg = config.vision_config, config.llm_config
        image_size = config.force_image_size or vcfg.image_size
        self.image_size = image_size
        self.num_image_token = int((image_size // vcfg.patch_size) ** 2 * config.downsample_ratio ** 2)
        self.select_layer = config.select_layer
        self.template = config.template
        get_conv_template(self.template)  # fail early on an unknown template
        self.system_message = getattr(config, 'system_message', None) or get_conv_template(self.template).system_message
        lcfg._attn_implementation = attn_implementation or default_attn_implementation()
        self.vision_model = VISION_TOWERS.get(vcfg.model_type)(vcfg)
        self.mlp1 = CONNECTORS.get(self.connector_name)(vcfg.hidden_size, lcfg.hidden_size,
                                                        config.downsample_ratio, config.ps_version)
        self.llm_entry = LLMS.get(lcfg.architectures[0])
        self.language_model = self.llm_entry.build(lcfg)
        self.img_context_token_id = None

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def set_tokenizer(self, tokenizer):
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, num_image_token, llm_width]."""
        return self.mlp1(self.vision_model.patch_features(pixel_values, self.select_layer))

    # Official semantics, shared with the exported folder's code.
    forward = InternVLChatModel.forward
    _splice = InternVLChatModel._splice
    _prompt = InternVLChatModel._prompt
    chat = InternVLChatModel.chat
    batch_chat = InternVLChatModel.batch_chat
    generate = InternVLChatModel.generate

    def parameter_counts(self) -> dict:
        return {name: sum(p.numel() for p in getattr(self, name).parameters())
                for name in ('vision_model', 'mlp1', 'language_model')}
