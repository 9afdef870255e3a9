"""LLaVA-1.5 / LLaVA-NeXT templates with LLaVA's own label rules (seed-systems doc §1, "Templates and
masking"): `plain` (stage 1, `conv_llava_plain` + `preprocess_plain`) and `vicuna_v1` (stage 2,
`conv_vicuna_v1` + `preprocess_v1`).

Both tokenize the way LLaVA's `tokenizer_image_token` does: the prompt is cut at each `<image>`, every
piece is tokenized on its own with the tokenizer's BOS, the BOS is dropped from all but the first
piece and the image placeholder goes between them. On a SentencePiece tokenizer this is not the same
as tokenizing the whole string (the text after an image gets its own dummy prefix), and LLaVA's
length arithmetic is written against these ids, so we keep them.

Deliberate differences from LLaVA, each where LLaVA would crash or cannot express the case:
- a `system` message first in the data replaces the default system message (LLaVA drops it);
- several `<image>` tags in one message all move to its start (LLaVA keeps only one);
- a tokenizer without a `legacy` attribute (not a Llama tokenizer) counts as legacy;
- the mismatch check always runs (LLaVA skips it for samples it truncated; we never truncate).
"""
from dataclasses import dataclass
from typing import List, Sequence

from ..image.tokens import IMAGE_TAG, LLAVA_ADDED, LLAVA_IMAGE
from ..rejects import IGNORE_INDEX, SampleRejected
from . import register
from .base import Segment, Template, _jinja_literal

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def tokenize_with_images(tokenizer, text: str, image: str = IMAGE_TAG) -> List[int]:
    """LLaVA's `tokenizer_image_token`: pieces between tags tokenized with the tokenizer's specials,
    BOS kept only on the first piece, `image`'s ids between pieces."""
    pieces = [tokenizer(piece).input_ids for piece in text.split(IMAGE_TAG)]
    image_ids = _token_ids(tokenizer, image)
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and pieces[0][:1] == [bos] else 0
    ids = pieces[0][:offset]
    for i, piece in enumerate(pieces):
        ids += (image_ids if i else []) + piece[offset:]
    return ids


def llava_chat_inputs(tokenizer, queries):
    """chat() inputs tokenized as LLaVA trains (`tokenize_with_images`), left-padded for a batch."""
    import torch
    rows = [tokenize_with_images(tokenizer, q) for q in ([queries] if isinstance(queries, str) else queries)]
    width, pad = max(len(r) for r in rows), tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {'input_ids': ids, 'attention_mask': mask}


def _token_ids(tokenizer, text: str) -> List[int]:
    # A one-token placeholder by its id: tokenizing it alone can add a prefix piece (non-legacy Llama).
    token_id = tokenizer.convert_tokens_to_ids(text)
    if token_id is not None and token_id != tokenizer.unk_token_id:
        return [token_id]
    return tokenizer(text, add_special_tokens=False).input_ids


def is_legacy(tokenizer) -> bool:
    """LLaVA reads `tokenizer.legacy` (Llama tokenizers); tokenizers without one count as legacy."""
    return getattr(tokenizer, 'legacy', True) is not False


def move_image_tags(conversations: Sequence[dict], n_images: int) -> List[dict]:
    """LLaVA's `preprocess_multimodal`: a message holding `<image>` becomes `<image>\\n` + its text with
    the tag removed, stripped. A single image without a tag is given to the first human turn."""
    messages = [dict(m) for m in conversations]
    tags = sum(m['value'].count(IMAGE_TAG) for m in messages)
    if n_images == 1 and tags == 0:
        first_human = next((m for m in messages if m['from'] == 'human'), None)
        if first_human is None:
            raise SampleRejected('no human turn to attach the image to')
        first_human['value'] = IMAGE_TAG + first_human['value']
        tags = 1
    if tags != n_images:
        raise SampleRejected(f'{tags} <image> tag(s) but {n_images} image(s); put one <image> per image in the text')
    for message in messages:
        count = message['value'].count(IMAGE_TAG)
        if count:
            text = message['value'].replace(IMAGE_TAG, '').strip()
            message['value'] = ((IMAGE_TAG + '\n') * count + text).strip()
    return messages


def close_rounds(ids, labels, cur, template, rule):
    """The end of the round arithmetic the LLaVA-family trainers share: what follows the last round is
    masked, and a sample whose rounds do not add up to its length is masked whole, with a warning."""
    labels[cur:] = [IGNORE_INDEX] * len(labels[cur:])
    if cur == len(ids):
        return ids, labels, []
    return ids, [IGNORE_INDEX] * len(ids), [f'tokenization mismatch: {cur} vs. {len(ids)} tokens by the {template} '
                                            f'round arithmetic; sample masked ({rule} rule)']


@dataclass(frozen=True)
class VicunaTemplate(Template):
    """SeparatorStyle.TWO: `system sep role: value sep|sep2 ...`; labels by `preprocess_v1`."""
    chat_inputs = staticmethod(llava_chat_inputs)  # chat() tokenizes as training does

    def prepare(self, conversations: Sequence[dict], n_images: int) -> List[dict]:
        return move_image_tags(conversations, n_images)

    @property
    def round_sep(self) -> str:
        return self.sep + self.roles[1]          # ' ASSISTANT: ' splits a round into question / answer

    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        """`preprocess_v1`, line for line: the whole prompt is tokenized once; each round's extent is
        measured by tokenizing the round alone, whose BOS stands in for the `</s>` the split removed;
        its instruction is that minus 2 (BOS and the lone space piece ' ASSISTANT: ' ends with).
        Non-legacy Llama tokenizers give the text after `</s>` no dummy prefix, so rounds after the
        first are one token shorter in the whole prompt than alone."""
        prompt = self.render(messages, system_message)
        ids = tokenize_with_images(tokenizer, prompt, image)
        labels = list(ids)
        labels[:1] = [IGNORE_INDEX] * len(labels[:1])   # BOS (LLaVA masks the first token, BOS or not)
        cur = 1
        for i, round_text in enumerate(prompt.split(self.sep2)):
            if round_text == '':
                break
            parts = round_text.split(self.round_sep)
            if len(parts) != 2:
                break
            round_len = len(tokenize_with_images(tokenizer, round_text, image))
            instruction_len = len(tokenize_with_images(tokenizer, parts[0] + self.round_sep, image)) - 2
            if i != 0 and not is_legacy(tokenizer):
                round_len -= 1
                instruction_len -= 1
            labels[cur:cur + instruction_len] = [IGNORE_INDEX] * len(labels[cur:cur + instruction_len])
            cur += round_len
        return close_rounds(ids, labels, cur, self.name, 'LLaVA preprocess_v1')

    def processor_chat_template(self, system_message: str = None, image_token: str = IMAGE_TAG) -> str:
        return super().processor_chat_template(system_message, image_token)


@dataclass(frozen=True)
class PlainTemplate(Template):
    """Stage-1 captions: the human turn becomes just `<image>`, text = `<image>` + caption + sep;
    labels mask what tokenizing `<image>` alone gives (BOS and the placeholder): the caption and the
    trailing newline are trained, and there is no end-of-sequence token."""
    chat_inputs = staticmethod(llava_chat_inputs)  # chat() tokenizes as training does

    def prepare(self, conversations: Sequence[dict], n_images: int) -> List[dict]:
        roles = [m['from'] for m in conversations]
        if roles != ['human', 'gpt']:
            raise SampleRejected(f'{self.name} takes one human turn and one gpt caption, got {roles}; '
                                 'use vicuna_v1 for conversations')
        if n_images != 1:
            raise SampleRejected(f'{self.name} needs exactly one image per row, got {n_images}')
        tags = conversations[0]['value'].count(IMAGE_TAG) + conversations[1]['value'].count(IMAGE_TAG)
        if tags > 1 or IMAGE_TAG in conversations[1]['value']:
            raise SampleRejected(f'{tags} <image> tag(s) for 1 image; put one <image> in the human turn')
        return [{'from': 'human', 'value': IMAGE_TAG}, {'from': 'gpt', 'value': conversations[1]['value']}]

    def segments(self, conversations: Sequence[dict], system_message: str = None) -> List[Segment]:
        segments = []
        for message in conversations:
            if message['from'] == 'human':
                segments.append(Segment(IMAGE_TAG))  # the question text is dropped, as LLaVA does
            elif message['from'] == 'gpt':
                segments.append(Segment(message['value'] + self.sep, trained=True))
            elif message['from'] != 'system':  # plain has no system text (LLaVA's is ''); training rejects one
                raise ValueError(f"unknown role {message['from']!r}")
        return segments

    def render(self, conversations: Sequence[dict], system_message: str = None,
               add_generation_prompt: bool = False) -> str:
        return ''.join(s.text for s in self.segments(conversations))  # the open turn has no header

    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        ids = tokenize_with_images(tokenizer, self.render(messages), image)
        masked = len(tokenize_with_images(tokenizer, messages[0]['value'], image))
        return ids, [IGNORE_INDEX] * masked + ids[masked:], []

    def chat_prompt(self, history, question: str, system_message: str = None) -> str:
        text = ''.join(IMAGE_TAG * q.count(IMAGE_TAG) + a + self.sep for q, a in history or [])
        return text + IMAGE_TAG * question.count(IMAGE_TAG)

    def chat_template(self, system_message: str = None, image_text: str = IMAGE_TAG) -> str:
        """Jinja for what `render()` gives: a user turn is the image, an assistant turn its caption + sep."""
        return self._jinja(_jinja_literal(image_text, True))

    def processor_chat_template(self, system_message: str = None, image_token: str = IMAGE_TAG) -> str:
        return self._jinja(_jinja_literal(image_token, True))

    def _jinja(self, image: str) -> str:
        return ("{%- for message in messages -%}"
                "{%- if message['role'] == 'user' -%}{{- " + image + " -}}"
                "{%- elif message['role'] == 'assistant' -%}"
                "{%- if message['content'] is string -%}{{- message['content'] -}}"
                "{%- else -%}{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}"
                "{{- part['text'] -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
                "{{- " + _jinja_literal(self.sep, True) + " -}}"
                "{%- endif -%}{%- endfor -%}")


# LLaVA stops plain generation at its separator "\n" (no EOS is trained in stage 1).
register(PlainTemplate('plain', '', '', ('', ''), '\n', stop_tokens=('\n',), keep_bos=False,
                       image_tokens=LLAVA_IMAGE, added_tokens=LLAVA_ADDED))
register(VicunaTemplate('vicuna_v1', '', VICUNA_SYSTEM, ('USER: ', 'ASSISTANT: '), ' ', sep2='</s>',
                        stop_tokens=('</s>',), open_role='ASSISTANT:',
                        image_tokens=LLAVA_IMAGE, added_tokens=LLAVA_ADDED))
