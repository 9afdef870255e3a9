"""A vlmtune composite model: vision tower -> connector -> transformers LLM, the connector's outputs
replacing the embeddings of the image tokens in order (as vlmtune computes it). The tower and
connector classes are vlmtune's own component files, shipped beside this one; the LLM is
transformers' class for `llm.config.model_type`. Load with
`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`; vlmtune is not needed."""
import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel

# transformers copies only the files this one imports (not theirs): the helpers the components import are
# imported here too.
from ._composite_register import register  # noqa: F401
from .cpu_half import use_patch_conv  # noqa: F401
from .checkpointing import checkpoint  # noqa: F401
from ._transformers_vit import TransformersViT  # noqa: F401
from .blip2_vision import Blip2VisionTower
from .clip import CLIPTower
from .configuration_composite import CompositeConfig
from .configuration_intern_vit import InternVisionConfig
from .mlp import IdentityConnector, LinearConnector, MLPConnector
from .modeling_intern_vit import InternVisionModel
from .pixel_shuffle_mlp import PixelShuffleMLP
from .qformer import QFormerConnector
from .resampler import ResamplerConnector
from .siglip import SigLIPTower


class InternViTTower(InternVisionModel):
    """InternViT (the internvl layout's own remote code), read as InternVL reads it: `select_layer`'s
    hidden states (the last one: last_hidden_state), CLS dropped. Same parameter names as vlmtune's."""

    def __init__(self, config: dict, select_layer: int = -1, **_):
        super().__init__(InternVisionConfig(**config))
        self.select_layer = select_layer

    @property
    def width(self) -> int:
        return self.config.hidden_size

    def forward(self, pixel_values):
        out = super().forward(pixel_values=pixel_values, output_hidden_states=self.select_layer != -1)
        hidden = out.last_hidden_state if self.select_layer == -1 else out.hidden_states[self.select_layer]
        return hidden[:, 1:]


TOWERS = {'clip': CLIPTower, 'siglip': SigLIPTower, 'blip2_vision': Blip2VisionTower, 'intern_vit': InternViTTower}
CONNECTORS = {'linear': LinearConnector, 'identity': IdentityConnector, 'pixel_shuffle_mlp': PixelShuffleMLP,
              'qformer': QFormerConnector, 'resampler': ResamplerConnector,
              **{f'mlp{depth}x_gelu': type(f'MLP{depth}xGELU', (MLPConnector,), {'depth': depth})
                 for depth in range(1, 9)}}


def causal_lm(text_config):
    """transformers' class for the config; Qwen3 / Qwen3-MoE before transformers 4.51: the shipped copies."""
    try:
        return AutoModelForCausalLM.from_config(text_config)
    except ValueError:
        from .qwen3 import Qwen3ForCausalLM
        from .qwen3_moe import Qwen3MoeForCausalLM
        shipped = {'qwen3': Qwen3ForCausalLM, 'qwen3_moe': Qwen3MoeForCausalLM}
        if text_config.model_type not in shipped:
            raise
        return shipped[text_config.model_type](text_config)


def _settings(part: dict) -> dict:
    return {k: v for k, v in part.items() if k not in ('type', 'pretrained')}


class CompositeModel(PreTrainedModel, GenerationMixin):
    config_class = CompositeConfig
    main_input_name = 'pixel_values'
    _supports_sdpa = True

    def __init__(self, config: CompositeConfig):
        super().__init__(config)
        tower = config.vision_tower
        self.vision_tower = TOWERS[tower['type']](**_settings(tower))
        llm_width = config.text_config.hidden_size
        self.connector = CONNECTORS[config.connector['type']](self.vision_tower.width, llm_width,
                                                               **_settings(config.connector))
        self.language_model = causal_lm(config.text_config)
        self.post_init()  # transformers 5 sets its loading bookkeeping (tied keys) here

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def _embeddings(self, input_ids, pixel_values):
        embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is None:
            return embeds
        features = self.connector(self.vision_tower(pixel_values.to(self.dtype)))
        selected = input_ids == self.config.image_token_id
        if int(selected.sum()) != features.shape[0] * features.shape[1]:
            raise ValueError(f'{int(selected.sum())} image tokens in the prompt but {features.shape[0]} images of '
                             f'{features.shape[1]} tokens each')
        embeds = embeds.clone()
        embeds[selected] = features.reshape(-1, features.shape[-1]).to(embeds.dtype)
        return embeds

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None, labels=None, **kwargs):
        return self.language_model(inputs_embeds=self._embeddings(input_ids, pixel_values),
                                   attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids=None, pixel_values=None, attention_mask=None, **kwargs):
        return self.language_model.generate(inputs_embeds=self._embeddings(input_ids, pixel_values),
                                            attention_mask=attention_mask, **kwargs)
