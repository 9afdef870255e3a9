"""InternVL chat model: InternViT -> pixel shuffle -> `mlp1` -> LLM, with the official
`forward` / `chat` / `batch_chat` / `generate` semantics.

Self-contained: copied verbatim into exported checkpoint folders, loaded there with
`AutoModel.from_pretrained(folder, trust_remote_code=True)` (tested with transformers 4.37.2, 4.48,
4.57 and 5.24).
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_internvl_chat import InternVLChatConfig
from .conversation import get_conv_template
from .modeling_intern_vit import InternVisionModel
from .modeling_internlm2 import CACHE_KEY, InternLM2ForCausalLM

IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN = '<img>', '</img>', '<IMG_CONTEXT>'


def _llm_class(arch: str):
    if arch == 'LlamaForCausalLM':
        return LlamaForCausalLM
    if arch == 'InternLM2ForCausalLM':
        return InternLM2ForCausalLM
    if arch == 'Qwen2ForCausalLM':
        from transformers import Qwen2ForCausalLM
        return Qwen2ForCausalLM
    if arch == 'Phi3ForCausalLM':
        from transformers import Phi3ForCausalLM  # transformers >= 4.40
        return Phi3ForCausalLM
    if arch == 'Qwen3ForCausalLM':
        try:  # transformers >= 4.51 has its own; older ones use the copy shipped in this folder
            from transformers import Qwen3ForCausalLM
        except ImportError:
            from .qwen3 import Qwen3ForCausalLM
        return Qwen3ForCausalLM
    if arch == 'Qwen3MoeForCausalLM':
        try:
            from transformers import Qwen3MoeForCausalLM
        except ImportError:
            from .qwen3_moe import Qwen3MoeForCausalLM
        return Qwen3MoeForCausalLM
    if arch in ('Qwen2MoeForCausalLM', 'MixtralForCausalLM'):
        import transformers
        return getattr(transformers, arch)
    raise NotImplementedError(f'{arch} is not implemented.')


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, ps_version: str = 'v2') -> torch.Tensor:
    """[B, h, w, C] -> [B, h*s, w*s, C/s^2]; block (i, j) holds x[ri+a, rj+b] for a, b in 0..r-1
    (row-major within the block, r = 1/s). v2 orders blocks row-major, v1 column-major."""
    batch, height, width, channels = x.shape
    r = int(round(1 / scale_factor))
    x = x.reshape(batch, height // r, r, width // r, r, channels).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, height // r, width // r, channels * r * r)
    if ps_version == 'v1':
        x = x.transpose(1, 2)
    return x.contiguous()


def expand_image_tokens(prompt: str, num_patches_list: List[int], num_image_token: int) -> str:
    for num_patches in num_patches_list:
        image_tokens = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * num_image_token * num_patches + IMG_END_TOKEN
        prompt = prompt.replace('<image>', image_tokens, 1)
    return prompt


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    main_input_name = 'pixel_values'
    base_model_prefix = 'language_model'
    _no_split_modules = ['InternVisionModel', 'LlamaDecoderLayer', 'InternLM2DecoderLayer',
                         'Qwen2DecoderLayer', 'Phi3DecoderLayer', 'Qwen3DecoderLayer', 'Qwen3MoeDecoderLayer',
                         'Qwen2MoeDecoderLayer', 'MixtralDecoderLayer']
    _supports_flash_attn_2 = True
    supports_gradient_checkpointing = True

    def __init__(self, config: InternVLChatConfig, vision_model=None, language_model=None, use_flash_attn=True):
        super().__init__(config)
        if config.use_backbone_lora or config.use_llm_lora:
            raise ValueError('This folder holds unmerged LoRA weights; merge them first (vlmtune resave).')
        image_size = config.force_image_size or config.vision_config.image_size
        self.patch_size = config.vision_config.patch_size
        self.select_layer = config.select_layer
        self.template = config.template
        self.num_image_token = int((image_size // self.patch_size) ** 2 * (config.downsample_ratio ** 2))
        self.downsample_ratio = config.downsample_ratio
        self.ps_version = config.ps_version
        # flash-attn only where it is installed and a GPU runs it; otherwise plain attention.
        use_flash = use_flash_attn and torch.cuda.is_available() and _has_flash_attn()
        config.llm_config._attn_implementation = 'flash_attention_2' if use_flash else 'eager'
        self.vision_model = vision_model or InternVisionModel(config.vision_config)
        self.language_model = language_model or _llm_class(config.llm_config.architectures[0])(config.llm_config)
        vit_hidden = config.vision_config.hidden_size
        llm_hidden = config.llm_config.hidden_size
        in_width = vit_hidden * int(round(1 / self.downsample_ratio)) ** 2
        self.mlp1 = nn.Sequential(nn.LayerNorm(in_width), nn.Linear(in_width, llm_hidden), nn.GELU(),
                                  nn.Linear(llm_hidden, llm_hidden))
        self.img_context_token_id = None
        self.conv_template = get_conv_template(self.template)
        self.system_message = getattr(config, 'system_message', None) or self.conv_template.system_message
        # transformers 5 collects tied-weight keys and other per-model state here; in 4.x it only marks
        # modules as initialised (the default `_init_weights` is a no-op there), so weights are unchanged.
        self.post_init()

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.select_layer == -1:
            vit_embeds = self.vision_model(pixel_values=pixel_values, output_hidden_states=False).last_hidden_state
        else:
            vit_embeds = self.vision_model(pixel_values=pixel_values,
                                           output_hidden_states=True).hidden_states[self.select_layer]
        vit_embeds = vit_embeds[:, 1:, :]
        side = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], side, side, -1)
        vit_embeds = pixel_shuffle(vit_embeds, self.downsample_ratio, self.ps_version)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        return self.mlp1(vit_embeds)

    def _splice(self, input_ids: torch.Tensor, vit_embeds: torch.Tensor) -> torch.Tensor:
        input_embeds = self.language_model.get_input_embeddings()(input_ids)
        batch, length, width = input_embeds.shape
        input_embeds = input_embeds.reshape(batch * length, width)
        selected = input_ids.reshape(-1) == self.img_context_token_id
        vit_flat = vit_embeds.reshape(-1, width).to(input_embeds.dtype)
        if int(selected.sum()) != vit_flat.shape[0]:
            raise ValueError(f'{int(selected.sum())} <IMG_CONTEXT> tokens but {vit_flat.shape[0]} image features')
        input_embeds = input_embeds.clone()
        input_embeds[selected] = input_embeds[selected] * 0.0 + vit_flat
        return input_embeds.reshape(batch, length, width)

    def forward(self, pixel_values, input_ids=None, attention_mask=None, position_ids=None, image_flags=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, cache=None):
        past_key_values = cache if cache is not None else past_key_values  # transformers 5 name
        image_flags = image_flags.squeeze(-1)
        vit_embeds = self.extract_feature(pixel_values)[image_flags == 1]
        input_embeds = self._splice(input_ids, vit_embeds)
        outputs = self.language_model(inputs_embeds=input_embeds, attention_mask=attention_mask,
                                      position_ids=position_ids, use_cache=use_cache,
                                      output_hidden_states=output_hidden_states, **{CACHE_KEY: past_key_values})
        logits = outputs.logits
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous().float()
            shift_labels = labels[..., 1:].contiguous().to(shift_logits.device)
            loss = F.cross_entropy(shift_logits.view(-1, shift_logits.shape[-1]), shift_labels.view(-1),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                      **{CACHE_KEY: getattr(outputs, CACHE_KEY)})

    def _prompt(self, question: str, history) -> str:
        template = get_conv_template(self.template)
        template.system_message = self.system_message
        for old_question, old_answer in history or []:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        return template.get_prompt()

    def chat(self, tokenizer, pixel_values, question, generation_config, history=None, return_history=False,
             num_patches_list=None, IMG_START_TOKEN='<img>', IMG_END_TOKEN='</img>',
             IMG_CONTEXT_TOKEN='<IMG_CONTEXT>', verbose=False):
        if history is None and pixel_values is not None and '<image>' not in question:
            question = '<image>\n' + question
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        assert pixel_values is None or len(pixel_values) == sum(num_patches_list)
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        template = get_conv_template(self.template)
        eos_token_id = tokenizer.convert_tokens_to_ids(template.sep.strip())
        query = self._prompt(question, history)
        if verbose and pixel_values is not None:
            print(f'dynamic ViT batch size: {pixel_values.shape[0]}')
        query = expand_image_tokens(query, num_patches_list, self.num_image_token)
        model_inputs = tokenizer(query, return_tensors='pt')
        device = self.language_model.get_input_embeddings().weight.device
        generation_config = dict(generation_config)
        generation_config['eos_token_id'] = eos_token_id
        output = self.generate(pixel_values=pixel_values, input_ids=model_inputs['input_ids'].to(device),
                               attention_mask=model_inputs['attention_mask'].to(device), **generation_config)
        response = tokenizer.batch_decode(output, skip_special_tokens=True)[0]
        response = response.split(template.sep.strip())[0].strip()
        if history is None:
            history = []
        history.append((question, response))
        if return_history:
            return response, history
        if verbose:
            print(query.replace(IMG_CONTEXT_TOKEN, ''), response)
        return response

    def batch_chat(self, tokenizer, pixel_values, questions, generation_config, num_patches_list=None,
                   history=None, return_history=False, IMG_START_TOKEN='<img>', IMG_END_TOKEN='</img>',
                   IMG_CONTEXT_TOKEN='<IMG_CONTEXT>', verbose=False, image_counts=None):
        if history is not None or return_history:
            raise NotImplementedError('batch_chat takes no history')
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        template = get_conv_template(self.template)
        queries = []
        for idx, num_patches in enumerate(num_patches_list):
            question = questions[idx]
            if pixel_values is not None and '<image>' not in question:
                question = '<image>\n' + question
            queries.append(expand_image_tokens(self._prompt(question, None), [num_patches], self.num_image_token))
        tokenizer.padding_side = 'left'
        model_inputs = tokenizer(queries, return_tensors='pt', padding=True)
        device = self.language_model.get_input_embeddings().weight.device
        generation_config = dict(generation_config)
        generation_config['eos_token_id'] = tokenizer.convert_tokens_to_ids(template.sep.strip())
        output = self.generate(pixel_values=pixel_values, input_ids=model_inputs['input_ids'].to(device),
                               attention_mask=model_inputs['attention_mask'].to(device), **generation_config)
        responses = tokenizer.batch_decode(output, skip_special_tokens=True)
        return [r.split(template.sep.strip())[0].strip() for r in responses]

    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, visual_features=None,
                 generation_config=None, output_hidden_states=None, **generate_kwargs):
        assert self.img_context_token_id is not None
        if pixel_values is not None or visual_features is not None:
            vit_embeds = visual_features if visual_features is not None else self.extract_feature(pixel_values)
            input_embeds = self._splice(input_ids, vit_embeds)
        else:
            input_embeds = self.language_model.get_input_embeddings()(input_ids)
        return self.language_model.generate(inputs_embeds=input_embeds, attention_mask=attention_mask,
                                            generation_config=generation_config,
                                            output_hidden_states=output_hidden_states, use_cache=True,
                                            **generate_kwargs)


def _has_flash_attn() -> bool:
    try:
        import flash_attn  # noqa: F401
        return True
    except ImportError:
        return False
