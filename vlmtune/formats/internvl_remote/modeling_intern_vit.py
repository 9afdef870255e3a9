"""InternViT vision encoder: both official flavours.

* 300M style: LayerNorm, qkv bias, no q/k norm.
* 6B style: RMSNorm, no qkv bias, RMSNorm on q and k over the full width (all heads flattened).

Self-contained: copied verbatim into exported checkpoint folders (imports torch/transformers only).
"""
from typing import Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import PreTrainedModel

from .configuration_intern_vit import InternVisionConfig


class InternRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        # Computed in fp32 whatever the weights' dtype, as the official checkpoints expect.
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


NORM2FN = {'rms_norm': InternRMSNorm, 'layer_norm': nn.LayerNorm}


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, self.embed_dim))
        self.patch_embedding = nn.Conv2d(config.num_channels, self.embed_dim, kernel_size=self.patch_size,
                                         stride=self.patch_size)
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_positions, self.embed_dim))

    def resampled_patch_positions(self, height: int, width: int) -> torch.Tensor:
        """Patch position embeddings bicubically resampled (fp32) to a height x width grid."""
        pos = self.position_embedding[:, 1:]
        grid = self.image_size // self.patch_size
        pos = pos.float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(height, width), mode='bicubic', align_corners=False)
        return pos.reshape(1, -1, height * width).permute(0, 2, 1).to(self.position_embedding.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        target_dtype = self.patch_embedding.weight.dtype
        patch_embeds = self.patch_embedding(pixel_values.to(target_dtype))  # [B, C, h, w]
        batch, _, height, width = patch_embeds.shape
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.class_embedding.expand(batch, 1, -1).to(target_dtype)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        position = torch.cat([self.position_embedding[:, :1], self.resampled_patch_positions(height, width)], dim=1)
        return embeddings + position.to(target_dtype)


class InternAttention(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        if self.head_dim * self.num_heads != self.embed_dim:
            raise ValueError(f'hidden_size {self.embed_dim} is not divisible by num_heads {self.num_heads}')
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(self.embed_dim, 3 * self.embed_dim, bias=config.qkv_bias)
        self.attn_drop = config.attention_dropout
        self.proj_drop = nn.Dropout(config.dropout)
        self.qk_normalization = config.qk_normalization
        if self.qk_normalization:
            self.q_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
            self.k_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = hidden_states.shape
        # Rows of qkv are ordered q|k|v, each split into heads.
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, N, D]
        if self.qk_normalization:
            # The norm spans all heads at once, so flatten them back before normalising.
            q = self.q_norm(q.transpose(1, 2).flatten(2)).view(batch, tokens, self.num_heads, self.head_dim)
            k = self.k_norm(k.transpose(1, 2).flatten(2)).view(batch, tokens, self.num_heads, self.head_dim)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
                                             scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj_drop(self.proj(out))


class InternMLP(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        if config.hidden_act != 'gelu':
            raise ValueError(f'InternViT supports hidden_act "gelu" only, got {config.hidden_act!r}')
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states):
        return self.fc2(self.act(self.fc1(hidden_states)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (identity at inference or rate 0)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config: InternVisionConfig, drop_path_rate: float):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.attn = InternAttention(config)
        self.mlp = InternMLP(config)
        self.norm1 = NORM2FN[config.norm_type](self.embed_dim, eps=config.layer_norm_eps)
        self.norm2 = NORM2FN[config.norm_type](self.embed_dim, eps=config.layer_norm_eps)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(self.embed_dim))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(self.embed_dim))
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attn = self.attn(self.norm1(hidden_states).to(hidden_states.dtype)) * self.ls1
        hidden_states = hidden_states + drop_path(attn, self.drop_path_rate, self.training)
        mlp = self.mlp(self.norm2(hidden_states).to(hidden_states.dtype)) * self.ls2
        return hidden_states + drop_path(mlp, self.drop_path_rate, self.training)


class InternVisionEncoder(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList([InternVisionEncoderLayer(config, rates[i])
                                     for i in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, inputs_embeds, output_hidden_states=False, return_dict=True):
        all_states = (inputs_embeds,) if output_hidden_states else None
        hidden_states = inputs_embeds
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(layer, hidden_states, use_reentrant=False)
            else:
                hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_states = all_states + (hidden_states,)
        if not return_dict:
            return tuple(v for v in (hidden_states, all_states) if v is not None)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_states)


class InternVisionModel(PreTrainedModel):
    main_input_name = 'pixel_values'
    config_class = InternVisionConfig
    _no_split_modules = ['InternVisionEncoderLayer']
    supports_gradient_checkpointing = True

    def __init__(self, config: InternVisionConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, InternVisionEmbeddings):
            module.class_embedding.data.normal_(0.0, std)
            module.position_embedding.data.normal_(0.0, std)

    def _set_gradient_checkpointing(self, module=None, value=True, **kwargs):
        # Accepts both the transformers <4.35 (module, value) and newer (enable, func) call styles.
        enable = kwargs.get('enable', value)
        self.encoder.gradient_checkpointing = bool(enable)

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, pixel_values: Optional[torch.FloatTensor] = None, output_hidden_states: Optional[bool] = None,
                return_dict: Optional[bool] = None, pixel_embeds: Optional[torch.FloatTensor] = None):
        return_dict = True if return_dict is None else return_dict
        if pixel_values is None and pixel_embeds is None:
            raise ValueError('You have to specify pixel_values or pixel_embeds')
        hidden_states = pixel_embeds if pixel_embeds is not None else self.embeddings(pixel_values)
        encoder_outputs = self.encoder(hidden_states, output_hidden_states=bool(output_hidden_states),
                                       return_dict=True)
        last_hidden_state = encoder_outputs.last_hidden_state
        pooled_output = last_hidden_state[:, 0, :]
        if not return_dict:
            return (last_hidden_state, pooled_output) + ((encoder_outputs.hidden_states,)
                                                         if output_hidden_states else ())
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=pooled_output,
                                          hidden_states=encoder_outputs.hidden_states)
