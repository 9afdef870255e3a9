"""Configuration of a vlmtune composite model (a vision tower, a connector and a transformers LLM in
any combination). Self-contained: copied into exported folders with the component files it names."""
from transformers import CONFIG_MAPPING, PretrainedConfig


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
        self.text_config = CONFIG_MAPPING[config.pop('model_type', 'llama')](**config) if self.llm else None
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        out.pop('text_config', None)  # rebuilt from `llm` on load
        return out
