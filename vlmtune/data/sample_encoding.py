"""Conversation -> (input_ids, labels), the template's rules (format doc §6 and §8 for InternVL's).

* The template places the image tags (`Template.prepare`) and tokenizes with its own label rule
  (`Template.tokenize`), one placeholder per image; the placeholders then expand to what
  `ImageTokens` says each image becomes (`<img>` + `<IMG_CONTEXT>` x count + `</img>` for InternVL).
* Only what the template trains is trained; image tokens are always -100.
* Over-long samples are rejected with a reason, never truncated (a cut could split image tokens).
* A sample with nothing left to train is rejected; when the template's rule masked it (a warning),
  the reject says so (kind `labels_masked`): training on it would only cost compute.
"""
from dataclasses import dataclass, field
from typing import List, Optional

from .rejects import IGNORE_INDEX, LABELS_MASKED, NO_TRAINED_TOKENS, TOO_LONG, SampleRejected
from .templates import get_template

__all__ = ['EncodedSample', 'IGNORE_INDEX', 'SampleRejected', 'encode_conversation', 'prepare_conversations']


@dataclass
class EncodedSample:
    input_ids: List[int]
    labels: List[int]
    image_tokens: int = 0
    warnings: List[str] = field(default_factory=list)

    def __len__(self):
        return len(self.input_ids)


def prepare_conversations(conversations: List[dict], n_images: int, template='internvl2_5') -> List[dict]:
    """The messages with their image tags placed by the template's rule."""
    return get_template(template).prepare(conversations, n_images)


def encode_conversation(tokenizer, template, conversations: List[dict], images: list, image_tokens,
                        max_length: Optional[int] = None, system_message: Optional[str] = None) -> EncodedSample:
    """template: a Template or its name; images: per image a tile count or an ImageLayout; image_tokens:
    the model's `ImageTokens`."""
    template = get_template(template)
    messages = template.prepare(conversations, len(images))
    # One context token per image, expanded after tokenization: identical ids, faster.
    placeholder = image_tokens.start + image_tokens.context + image_tokens.end
    ids, labels, warnings = template.tokenize(tokenizer, messages, system_message, placeholder)
    context_id = tokenizer.convert_tokens_to_ids(image_tokens.context)
    positions = [i for i, t in enumerate(ids) if t == context_id]
    if len(positions) != len(images):
        raise SampleRejected(f'{len(positions)} image slots after tokenization but {len(images)} images')
    out_ids, out_labels, start = [], [], 0
    for pos, image in zip(positions, images):
        count = image_tokens.count(image)
        out_ids += ids[start:pos] + [context_id] * count
        out_labels += labels[start:pos] + [IGNORE_INDEX] * count
        start = pos + 1
    out_ids += ids[start:]
    out_labels += labels[start:]
    n_image = sum(image_tokens.count(image) for image in images)
    if max_length is not None and len(out_ids) > max_length:
        raise SampleRejected(f'{len(out_ids)} tokens ({n_image} of them image tokens) exceed max_length '
                             f'{max_length}; raise max_length or lower the max tiles', TOO_LONG)
    if all(label == IGNORE_INDEX for label in out_labels):
        if warnings:  # the template's own rule masked the sample: say which rule and why
            raise SampleRejected(f'labels masked by template {template.name}: ' + '; '.join(warnings), LABELS_MASKED)
        raise SampleRejected('no trained tokens (no assistant answer survived)', NO_TRAINED_TOKENS)
    return EncodedSample(out_ids, out_labels, n_image, warnings)
