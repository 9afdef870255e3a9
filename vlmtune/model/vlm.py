"""The composed vision-language model: vision tower -> connector -> LLM, built from a ModelSpec.

It owns forward / generate / chat / batch_chat for any composition, with the InternVL family's
semantics (format doc §5-§7): the connector's output replaces the embeddings of the image context
tokens in order, tiles with `image_flags == 0` are dropped, the loss is the mean next-token cross
entropy over labels != -100, and `chat()` builds its prompt from the spec's template and places
`<image>` blocks as the official `chat()` does. The model never knows which layout its weights came
from: key names are the layout adapters' business (vlmtune/formats).
"""
import inspect
import math
import warnings
from dataclasses import dataclass
from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from transformers.modeling_outputs import MoeCausalLMOutputWithPast
from transformers.modeling_utils import no_init_weights

from ..data.image.tokens import IMAGE_TAG
from ..data.loss_weights import weighted_cross_entropy
from .image_merge import spatial_unpad
from .moe import MoESettings, router_aux_loss, upcycle
from .spec import ModelSpec

PARTS = ('vision_tower', 'connector', 'llm')  # attributes, state-key prefixes and recipe keys: one vocabulary


@dataclass
class VLMOutput(MoeCausalLMOutputWithPast):
    """loss = lm_loss (+ router_aux_loss_coef * aux_loss for MoE LLMs, aux_loss as transformers computes it)."""
    lm_loss: Optional[torch.FloatTensor] = None


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
    def __init__(self, spec: ModelSpec, attn_implementation: str = None, init_weights: bool = True):
        """init_weights=False: the weights will be loaded; skip the random init (fast)."""
        super().__init__()
        self.spec = spec
        self.template = spec.build_template()
        self.image_processor = spec.build_image_processor()
        self.image_tokens = spec.image_tokens()
        self.system_message = spec.system_message or self.template.system_message
        self.img_context_token_id = None
        # Tower, connector, LLM in that order: a seeded init draws what the official code draws.
        with nullcontext() if init_weights else no_init_weights():
            self.vision_tower = _build(spec.component('vision_tower'), spec.settings('vision_tower'),
                                       init_weights=init_weights)
            llm_entry = spec.component('llm')
            self.connector = _build(spec.component('connector'), spec.settings('connector'),
                                    vision_width=self.vision_tower.width,
                                    llm_width=llm_entry.config(spec.settings('llm')).hidden_size)
            self.llm = llm_entry.build(spec.settings('llm'), attn_implementation or default_attn_implementation())
        self.llm.tie_weights()  # a tied head is the embedding (transformers skips this when init is skipped)
        # MoE-tuning: chosen FFNs become experts + a router (a fresh nn.Linear init, whatever init_weights says).
        moe = spec.settings('llm').get('moe')
        self.moe = upcycle(self.llm, MoESettings(**moe)) if moe else None
        if self.image_tokens.merge == 'spatial_unpad':  # LLaVA-NeXT's learned row separator, N(0, 1/H)
            width = llm_entry.config(spec.settings('llm')).hidden_size
            self.image_newline = nn.Parameter(torch.randn(width) / math.sqrt(width))

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def num_image_token(self) -> int:
        return self.image_tokens.per_tile

    def set_tokenizer(self, tokenizer):
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(self.image_tokens.context)
        self.template = self.template.bind(tokenizer)  # hf_chat_template renders with the tokenizer's own

    def parameter_counts(self) -> dict:
        counts = {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in PARTS}
        if hasattr(self, 'image_newline'):  # trains and is counted with the connector
            counts['connector'] += self.image_newline.numel()
        return counts

    # --- forward ------------------------------------------------------------------------------
    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[tiles, 3, S, S] -> [tiles, tokens per tile, llm width]. A tower with nothing to train runs
        without autograd (LLaVA's frozen CLIP does the same): same values, no activations kept."""
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(trains):
            features = self.vision_tower(pixel_values)
        return self.connector(features)

    def image_embeddings(self, pixel_values, image_flags=None, image_sizes=None) -> torch.Tensor:
        """The images' token embeddings in order, [tokens, llm width]; tiles with flag 0 are dropped;
        spatial merges need each image's (width, height). uint8 tiles (the training loader's) are
        normalised here, on the model's device."""
        if pixel_values.dtype == torch.uint8:
            pixel_values = self.image_processor.normalize(pixel_values)
        features = self.extract_feature(pixel_values)
        if image_flags is not None:
            features = features[image_flags.reshape(-1).to(features.device) == 1]
        if self.image_tokens.merge == 'flat':
            return features.reshape(-1, features.shape[-1])
        if image_sizes is None:
            raise ValueError(f'the {self.image_tokens.merge} image merge needs image_sizes (width, height per image)')
        layouts = [self.image_processor.layout(int(w), int(h)) for w, h in image_sizes.tolist()]
        return spatial_unpad(features, layouts, self.image_tokens, self.image_newline)

    def splice(self, input_ids: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        embeds = self.llm.get_input_embeddings()(input_ids)
        batch, length, width = embeds.shape
        embeds = embeds.reshape(batch * length, width)
        selected = input_ids.reshape(-1) == self.img_context_token_id
        image_flat = image_embeds.reshape(-1, width).to(embeds.dtype)
        if int(selected.sum()) != image_flat.shape[0]:
            raise ValueError(f'{int(selected.sum())} {self.image_tokens.context} tokens but {image_flat.shape[0]} '
                             f'image features')
        embeds = embeds.clone()
        embeds[selected] = embeds[selected] * 0.0 + image_flat  # keeps the graph through the text rows
        return embeds.reshape(batch, length, width)

    def forward(self, pixel_values, input_ids=None, attention_mask=None, position_ids=None, image_flags=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, image_sizes=None, return_logits=True, loss_weight=None):
        """return_logits=False (training): with labels, only the loss (see _labelled_loss). loss_weight ([B, L], beside
        labels): the loss is sum(w * CE) / sum(w) (data/loss_weights.py); without it the mean over labelled tokens."""
        if self.img_context_token_id is None:
            raise RuntimeError('call set_tokenizer(tokenizer) first (the image context token id is unknown)')
        image_embeds = self.image_embeddings(pixel_values, image_flags, image_sizes)
        attention_mask, position_ids = llm_attention_inputs(self.llm.config, attention_mask, position_ids)
        native_moe = labels is not None and self._native_router_loss(attention_mask)
        # Training a dense LLM: no padding mask where none is needed (flash-attn keeps it: it unpads, so
        # pads cost nothing there) and, unless asked for logits, the LM head on the labelled positions only.
        dense_training = labels is not None and past_key_values is None and not self._moe_llm()
        if dense_training and self.llm.config._attn_implementation != 'flash_attention_2':
            attention_mask = unneeded_padding_mask_dropped(attention_mask)
        embeds = self.splice(input_ids, image_embeds)
        if dense_training and not return_logits:
            loss = self._labelled_loss(embeds, attention_mask, position_ids, labels, loss_weight)
            return VLMOutput(loss=loss, lm_loss=loss)
        outputs = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                      past_key_values=past_key_values, use_cache=use_cache,
                                      output_hidden_states=output_hidden_states,
                                      **({'output_router_logits': True} if native_moe else {}))
        loss = lm_loss = aux_loss = None
        if labels is not None:
            targets = labels[..., 1:].to(outputs.logits.device)
            trained = targets != -100
            loss = lm_loss = _reduced_cross_entropy(outputs.logits[:, :-1][trained].float(), targets, trained,
                                                    loss_weight)
            aux_loss, weight = self._router_aux_loss(outputs if native_moe else None)
            if aux_loss is not None:  # weighted as transformers' MoE classes and MoE-LLaVA weigh it
                loss = lm_loss + weight * aux_loss.to(lm_loss.device)
        return VLMOutput(loss=loss, lm_loss=lm_loss, aux_loss=aux_loss, logits=outputs.logits,
                         past_key_values=outputs.past_key_values, hidden_states=outputs.hidden_states)

    def _moe_llm(self) -> bool:
        return self.moe is not None or hasattr(self.llm.config, 'router_aux_loss_coef')

    def _labelled_loss(self, embeds, attention_mask, position_ids, labels, loss_weight=None) -> torch.Tensor:
        """The mean next-token cross entropy over labels != -100, with the LM head (the family entry's
        `logits`: soft-capping and the like included) run on those positions only: the same loss without the [batch, length, vocab] fp32 logits (2 x 8k tokens x InternVL2-2B's
        92k vocabulary: 6 GB) or their log-softmax."""
        hidden = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask,
                                                   position_ids=position_ids, use_cache=False).last_hidden_state
        targets = labels[:, 1:].to(hidden.device)
        trained = targets != -100
        logits = self.spec.component('llm').logits(self.llm, hidden[:, :-1][trained]).float()
        return _reduced_cross_entropy(logits, targets, trained, loss_weight)

    def _native_router_loss(self, attention_mask) -> bool:
        """Ask a native MoE LLM (a config with router_aux_loss_coef) for its load-balancing loss? Not for
        packed rows on transformers 4.48's Qwen2-MoE / Mixtral: they read the mask as [batch, length]."""
        if self.moe is not None or not hasattr(self.llm.config, 'router_aux_loss_coef'):
            return False
        if attention_mask is None or attention_mask.dim() != 4 or getattr(self.spec.component('llm'),
                                                                           'packed_router_loss', False):
            return True
        warnings.warn(f'{type(self.llm).__name__}: no router aux loss on packed rows (transformers '
                      f'computes it from a [batch, length] mask); train with packing=False to keep it')
        return False

    def _router_aux_loss(self, outputs):
        """(aux loss, its weight): an upcycled LLM's (l_aux summed over MoE layers), a native MoE LLM's, or None."""
        if self.moe is not None:
            return router_aux_loss(self.llm), self.moe.router_aux_loss_coef
        if outputs is not None and getattr(outputs, 'aux_loss', None) is not None:
            return outputs.aux_loss, self.llm.config.router_aux_loss_coef
        return None, None

    # --- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, visual_features=None,
                 generation_config=None, output_hidden_states=None, image_sizes=None, **generate_kwargs):
        if pixel_values is not None or visual_features is not None:
            image_embeds = visual_features if visual_features is not None else \
                self.image_embeddings(pixel_values, image_sizes=image_sizes)
            embeds = self.splice(input_ids, image_embeds)
        else:
            embeds = self.llm.get_input_embeddings()(input_ids)
        return self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                                            generation_config=generation_config,
                                            output_hidden_states=output_hidden_states, use_cache=True,
                                            **generate_kwargs)

    def prompt(self, question: str, history=None) -> str:
        """The text `chat()` sends (before `<image>` expansion)."""
        return self.template.chat_prompt(history, question, self.system_message)

    def _answer(self, tokenizer, queries, pixel_values, generation_config, image_sizes=None) -> list:
        """queries: one prompt (str, as chat() sends it) or a list (batch_chat, left-padded)."""
        device = self.llm.get_input_embeddings().weight.device
        inputs = self.template.chat_inputs(tokenizer, queries)  # as training tokenized the prompt
        end = self.template.end_token
        config = dict(generation_config, eos_token_id=tokenizer.convert_tokens_to_ids(end))
        output = self.generate(pixel_values=pixel_values, input_ids=inputs['input_ids'].to(device),
                               attention_mask=inputs['attention_mask'].to(device), image_sizes=image_sizes, **config)
        return [text.split(end)[0].strip() for text in decode_answers(tokenizer, output)]

    def chat(self, tokenizer, pixel_values, question, generation_config, history=None, return_history=False,
             num_patches_list=None, verbose=False, image_sizes=None):
        """Official `chat()` semantics: `<image>\\n` is prepended on the first turn when the question has
        no tag; every `<image>` in the whole prompt (history included) is expanded in order; the
        (question as sent, answer) pair is appended to the caller's history list in place.
        image_sizes: (width, height) per image, for spatial merges (LLaVA-NeXT)."""
        if history is None and pixel_values is not None and IMAGE_TAG not in question:
            question = IMAGE_TAG + '\n' + question
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        if pixel_values is not None and len(pixel_values) != sum(num_patches_list):
            raise ValueError(f'{len(pixel_values)} tiles but num_patches_list sums to {sum(num_patches_list)}')
        self.set_tokenizer(tokenizer)
        images = num_patches_list if image_sizes is None else \
            [self.image_processor.layout(int(w), int(h)) for w, h in torch.as_tensor(image_sizes).tolist()]
        query = self.image_tokens.expand(self.prompt(question, history), images)
        if verbose and pixel_values is not None:
            print(f'dynamic ViT batch size: {pixel_values.shape[0]}')
        response = self._answer(tokenizer, query, pixel_values, generation_config,
                                None if image_sizes is None else torch.as_tensor(image_sizes))[0]
        history = [] if history is None else history
        history.append((question, response))
        return (response, history) if return_history else response

    def batch_chat(self, tokenizer, pixel_values, questions, generation_config, num_patches_list=None,
                   history=None, return_history=False, verbose=False, image_sizes=None):
        """Official `batch_chat()`: one image per question (its tiles in num_patches_list, 0 for a
        text-only question), `<image>\\n` prepended when untagged, prompts left-padded together.
        image_sizes: (width, height) per question, for spatial merges (LLaVA-NeXT)."""
        if history is not None or return_history:
            raise NotImplementedError('batch_chat takes no history')
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else [0] * len(questions)
        self.set_tokenizer(tokenizer)
        images = num_patches_list if image_sizes is None else \
            [self.image_processor.layout(int(w), int(h)) for w, h in torch.as_tensor(image_sizes).tolist()]
        queries = []
        for question, tiles, image in zip(questions, num_patches_list, images):
            if pixel_values is not None and tiles and IMAGE_TAG not in question:
                question = IMAGE_TAG + '\n' + question
            queries.append(self.image_tokens.expand(self.prompt(question), [image] if tiles else []))
        side, tokenizer.padding_side = tokenizer.padding_side, 'left'
        try:
            return self._answer(tokenizer, queries, pixel_values, generation_config,
                                None if image_sizes is None else torch.as_tensor(image_sizes))
        finally:
            tokenizer.padding_side = side


def _reduced_cross_entropy(logits, targets, trained, loss_weight) -> torch.Tensor:
    """CE of the trained positions' logits, reduced as the batch's loss_weight says (shifted like the labels)."""
    ce = F.cross_entropy(logits, targets[trained], reduction='none')
    weights = None if loss_weight is None else loss_weight[:, 1:].to(ce.device)[trained]
    return weighted_cross_entropy(ce, weights)


def decode_answers(tokenizer, rows) -> list:
    """Generated ids -> text as the official chat() decodes them (its tokenizer is the slow one): the
    tokenizer's own special tokens are skipped, the family's added ones (`<ref>`, `<box>`, `</quad>`, ...)
    are kept as text. A fast tokenizer's skip_special_tokens would drop those too."""
    special = set(tokenizer.all_special_ids)
    return tokenizer.batch_decode([[t for t in row.tolist() if t not in special] for row in rows],
                                  skip_special_tokens=False)


def llm_attention_inputs(config, attention_mask, position_ids):
    """(attention_mask, position_ids) as the LLM takes them: the one place a packed row's 4-D block
    mask (data/collate.py) is dropped for flash-attention.

    transformers 4.48 under flash_attention_2: `_update_causal_mask` hands any mask with a 0 in it to
    `_flash_attention_forward`, which reads it as a [B, L] padding mask (`_upad_input`), so a 4-D block
    mask would be misread. Without a mask, `_flash_attention_forward` takes its varlen path whenever
    position_ids are not non-decreasing (they restart at 0 at each sample): `prepare_fa2_from_position_ids`
    cuts the row at every position 0 (each sample; each padding token, at position 0, is a block of its
    own) and `flash_attn_varlen_func` attends inside each piece only. A one-sample row with no padding
    has increasing ids and takes plain causal `flash_attn_func`, which is the same thing.
    Every other implementation (sdpa, sdpa_packed, eager) uses the 4-D mask as given."""
    if attention_mask is None or attention_mask.dim() != 4 or config._attn_implementation != 'flash_attention_2':
        return attention_mask, position_ids
    if position_ids is None:
        raise ValueError('a packed row (4-D attention mask) under flash_attention_2 needs its position_ids: '
                         'they mark where each sample starts (data/collate.py pack_collate)')
    return None, position_ids


def unneeded_padding_mask_dropped(attention_mask):
    """None for a right-padded [batch, length] training mask, else the mask. Under causal attention no
    real token sees a pad (pads come after it), and the loss never reads a pad (labels -100), so the
    loss and its gradients are the same without the mask; without it the LLM's SDPA runs its causal
    kernel instead of transformers building and applying a [batch, 1, L, L] float mask every step.
    Not for MoE LLMs (routers count pads in their balance loss and capacity), left padding or holes."""
    if attention_mask is None or attention_mask.dim() != 2:
        return attention_mask
    lengths = attention_mask.sum(-1, keepdim=True)
    prefix = torch.arange(attention_mask.shape[1], device=attention_mask.device) < lengths
    return None if torch.equal(prefix, attention_mask.bool()) else attention_mask


def _build(cls, settings: dict, init_weights: bool = True, **kwargs):
    """A component from its settings; `init_weights` only for components that take it."""
    if 'init_weights' in inspect.signature(cls).parameters:
        kwargs['init_weights'] = init_weights
    return cls(**kwargs, **settings)
