"""Configuration of a vlmtune composite model (a vision tower, a connector and a transformers LLM in
any combination). Self-contained: copied into exported folders with the component files it names."""
from transformers import CONFIG_MAPPING, PretrainedConfig

# transformers copies only the files this one imports, then reads theirs: qwen3.py imports the shim.
from ._composite_register import register  # noqa: F401


def text_config_class(model_type: str):
    """transformers' config class; Qwen3 / Qwen3-MoE before transformers 4.51: the copies shipped here."""
    if model_type in CONFIG_MAPPING:
        return CONFIG_MAPPING[model_type]
    if model_type == 'qwen3':
        from .qwen3 import Qwen3Config
        return Qwen3Config
    if model_type == 'qwen3_moe':
        from .qwen3_moe import Qwen3MoeConfig
        return Qwen3MoeConfig
    raise ValueError(f'LLM model_type {model_type!r} is not in this transformers')


class CompositeConfig(PretrainedConfig):
    model_type = 'vlmtune_composite'
    is_composition = True

    def __init__(self, vision_tower=None, connector=None, llm=None, image_token_id=None, num_image_token=None,
                 **kwargs):
        self.vision_tower = vision_tower or {}
        self.connector = connector or {}
        self.llm = llm or {}
        self.image_token_id, self.num_image_token = image_token_id, num_image_token
        config = dict(self.llm.get('config') or {})
        self.text_config = text_config_class(config.pop('model_type', 'llama'))(**config) if self.llm else None
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        out.pop('text_config', None)  # rebuilt from `llm` on load
        return out
