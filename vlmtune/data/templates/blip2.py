"""`blip2`: the prompt released BLIP-2 models are used with (transformers' Blip2Processor and model card,
LAVIS `blip2_opt`): the image's query outputs come first, then the tokenizer's text with its own BOS,

    <image> x num_query_tokens, BOS, 'Question: {q} Answer: {a}\\n'

(the processor puts the image tokens before the BOS it adds; OPT's BOS is `</s>`). The answer and its
newline (the released OPT configs' end of text) are trained; image, BOS and question are masked. One image
per conversation, as BLIP-2 takes."""
from dataclasses import dataclass
from typing import List, Sequence

from ..image.tokens import IMAGE_TAG, LLAVA_ADDED, LLAVA_IMAGE
from ..rejects import IGNORE_INDEX, SampleRejected
from . import register
from .base import Template, adds_bos


def _untagged(text: str) -> str:
    return text.replace(IMAGE_TAG + '\n', '').replace(IMAGE_TAG, '').strip()


@dataclass(frozen=True)
class Blip2Template(Template):
    def prepare(self, conversations: Sequence[dict], n_images: int) -> List[dict]:
        """The image leads the whole text (a first `system` message of just the tag), wherever it was."""
        if n_images > 1:
            raise SampleRejected(f'{n_images} images: BLIP-2 takes one image per conversation')
        tags = sum(m['value'].count(IMAGE_TAG) for m in conversations)
        if n_images == 0 and tags:
            raise SampleRejected(f'{tags} <image> tag(s) but no image; remove the tag or add the image')
        messages = [dict(m, value=_untagged(m['value'])) for m in conversations if m['from'] != 'system']
        return ([{'from': 'system', 'value': IMAGE_TAG}] if n_images else []) + messages

    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        """The base rule (keep_bos off), then the tokenizer's BOS placed after the image placeholder."""
        ids, labels, warnings = super().tokenize(tokenizer, messages, system_message, image)
        if adds_bos(tokenizer):
            lead = len(tokenizer(image, add_special_tokens=False).input_ids) if messages and \
                messages[0]['from'] == 'system' else 0
            ids, labels = ids[:lead] + [tokenizer.bos_token_id] + ids[lead:], labels[:lead] + [IGNORE_INDEX] + labels[lead:]
        return ids, labels, warnings

    def chat_prompt(self, history, question: str, system_message: str = None) -> str:
        """The tag(s) anywhere in the conversation lead the prompt, as the processor places the image."""
        texts = [question] + [q for q, _ in history or []]
        lead = IMAGE_TAG if any(IMAGE_TAG in t for t in texts) else ''
        history = [(_untagged(q), a) for q, a in history or []]
        return lead + super().chat_prompt(history, _untagged(question), '')

    def chat_inputs(self, tokenizer, queries):
        """The processor's ids: the leading image tokens, then the rest with the tokenizer's specials (BOS)."""
        import torch
        token = self.image_tokens[1]
        image_id = tokenizer.convert_tokens_to_ids(token)
        rows = []
        for query in [queries] if isinstance(queries, str) else queries:
            lead = 0
            while query.startswith(token, lead * len(token)):
                lead += 1
            rows.append([image_id] * lead + tokenizer(query[lead * len(token):]).input_ids)
        width, pad = max(len(r) for r in rows), tokenizer.pad_token_id or 0
        return {'input_ids': torch.tensor([[pad] * (width - len(r)) + r for r in rows]),
                'attention_mask': torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])}


register(Blip2Template('blip2', '', '', ('Question: ', ' Answer: '), '', sep2='\n', stop_tokens=('\n',),
                       keep_bos=False, open_role=' Answer:', image_tokens=LLAVA_IMAGE, added_tokens=LLAVA_ADDED))
