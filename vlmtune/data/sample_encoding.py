"""Conversation -> (input_ids, labels) exactly per the format doc §6 and §8.

* `<image>` tags expand in order to what `ImageTokens` says (`<img>` + `<IMG_CONTEXT>` x count + `</img>`);
  a single-image row without a tag gets `<image>\\n` before its first human turn.
* Only assistant answers and their end-of-turn token are trained; everything else is -100.
* The ids are checked against tokenizing the whole prompt at once (what `chat()` feeds the model);
  on a mismatch the whole sample is masked and a warning is returned, as the official code does.
* Over-long samples are rejected with a reason, never truncated (a cut could split image tokens).
"""
from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Optional

from .templates import get_template

IGNORE_INDEX = -100


class SampleRejected(ValueError):
    """The sample cannot be trained on; the message says why and what to change."""


@dataclass
class EncodedSample:
    input_ids: List[int]
    labels: List[int]
    image_tokens: int = 0
    warnings: List[str] = field(default_factory=list)

    def __len__(self):
        return len(self.input_ids)


def prepare_conversations(conversations: List[dict], n_images: int) -> List[dict]:
    messages = [dict(m) for m in conversations]
    tags = sum(m['value'].count('<image>') for m in messages)
    if n_images == 1 and tags == 0:
        first_human = next((m for m in messages if m['from'] == 'human'), None)
        if first_human is None:
            raise SampleRejected('no human turn to attach the image to')
        first_human['value'] = '<image>\n' + first_human['value']
        tags = 1
    if tags != n_images:
        raise SampleRejected(f'{tags} <image> tag(s) but {n_images} image(s); put one <image> per image in the text')
    return messages


@lru_cache(maxsize=64)
def _adds_bos(tokenizer) -> bool:
    return tokenizer.bos_token_id is not None and tokenizer('a').input_ids[:1] == [tokenizer.bos_token_id]


def encode_conversation(tokenizer, template, conversations: List[dict], tiles_per_image: List[int],
                        image_tokens, max_length: Optional[int] = None,
                        system_message: Optional[str] = None) -> EncodedSample:
    """template: a Template or its name; image_tokens: the model's `ImageTokens`."""
    template = get_template(template)
    messages = prepare_conversations(conversations, len(tiles_per_image))
    # One context token per image, expanded after tokenization: identical ids, faster.
    compact_image = image_tokens.start + image_tokens.context + image_tokens.end
    ids, labels, texts = [], [], []
    for segment in template.segments(messages, system_message):
        text = segment.text.replace('<image>', compact_image)
        texts.append(text)
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        labels += piece if segment.trained else [IGNORE_INDEX] * len(piece)
    warnings = []
    if tokenizer(''.join(texts), add_special_tokens=False).input_ids != ids:
        labels = [IGNORE_INDEX] * len(ids)
        warnings.append('segment tokenization differs from whole-prompt tokenization; sample masked')
    if template.keep_bos and _adds_bos(tokenizer):
        ids, labels = [tokenizer.bos_token_id] + ids, [IGNORE_INDEX] + labels
    context_id = tokenizer.convert_tokens_to_ids(image_tokens.context)
    positions = [i for i, t in enumerate(ids) if t == context_id]
    if len(positions) != len(tiles_per_image):
        raise SampleRejected(f'{len(positions)} image slots after tokenization but {len(tiles_per_image)} images')
    out_ids, out_labels, start = [], [], 0
    for pos, tiles in zip(positions, tiles_per_image):
        out_ids += ids[start:pos] + [context_id] * image_tokens.count(tiles)
        out_labels += labels[start:pos] + [IGNORE_INDEX] * image_tokens.count(tiles)
        start = pos + 1
    out_ids += ids[start:]
    out_labels += labels[start:]
    n_image = sum(image_tokens.count(tiles) for tiles in tiles_per_image)
    if max_length is not None and len(out_ids) > max_length:
        raise SampleRejected(f'{len(out_ids)} tokens ({n_image} of them image tokens) exceed max_length '
                             f'{max_length}; raise max_length or lower the max tiles')
    if all(label == IGNORE_INDEX for label in out_labels):
        raise SampleRejected('no trained tokens (no assistant answer survived)')
    return EncodedSample(out_ids, out_labels, n_image, warnings)
