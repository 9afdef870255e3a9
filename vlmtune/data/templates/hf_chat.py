"""`hf_chat_template`: the template of a base that carries its own tokenizer `chat_template` (llava-hf
checkpoints, LLaVA-NeXT on Mistral / Llama-3 / Qwen2 chat LLMs). The prompt is whatever the
tokenizer's `apply_chat_template` renders; this file only decides what is trained.

Design: the template needs the tokenizer to render, so it is bound to one (`bind(tokenizer)` returns a
copy holding it; `DataSpec` and the model bind on their own). `tokenize` receives the tokenizer anyway
and always renders with that tokenizer's template. `chat_template()` returns the base's own Jinja
unchanged (a configured system message goes in as a system turn, not into the Jinja).

Label rule, per assistant message i (messages as {role, content}, string contents):
- `head` = render(messages[:i], add_generation_prompt=True), `done` = render(messages[:i+1]); both
  must be prefixes of the full render (the template is prefix-stable), else the sample is masked;
- the trained text starts where the (stripped) content first occurs after `head` and ends where
  `done` ends, less trailing whitespace: the content plus the end-of-turn text the template writes
  after it (`</s>`, `<|im_end|>`, `<|eot_id|>`; ChatML's newline after `<|im_end|>` is not trained);
- text positions become token positions by the longest common token prefix of tokenizing the text
  up to the position and tokenizing the whole (a token that straddles the start, like SentencePiece's
  `▁word` after `ASSISTANT: `, is trained); if the trained tokens do not decode to a text holding the
  content, the sample is masked. A masked sample carries a warning (and the encoder rejects it).
"""
import os
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence

from ..rejects import IGNORE_INDEX, SampleRejected
from . import register
from .base import Segment, Template
from .llava import IMAGE_TAG, LLAVA_ADDED, LLAVA_IMAGE, move_image_tags

ROLES = {'system': 'system', 'human': 'user', 'gpt': 'assistant'}
# A ChatML Jinja for tiny models (their tokenizers have no chat_template of their own).
TINY_CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
               "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@dataclass(frozen=True)
class HFChatTemplate(Template):
    tokenizer: object = field(default=None, compare=False, repr=False)
    jinja: Optional[str] = None     # the bound tokenizer's chat_template: part of the identity (length caches)

    def tiny_settings(self) -> dict:
        return {'chat_template': TINY_CHATML}

    def configure(self, settings: dict) -> 'HFChatTemplate':
        """A spec may carry the Jinja (`chat_template`): a llava-hf folder keeps it with its processor."""
        return replace(self, jinja=settings.get('chat_template') or self.jinja)

    def bind(self, tokenizer) -> 'HFChatTemplate':
        jinja = getattr(tokenizer, 'chat_template', None)
        jinja = jinja if isinstance(jinja, str) and jinja.strip() else self.jinja
        if not jinja:
            raise ValueError(f'template {self.name}: neither the tokenizer nor the spec has a chat_template to '
                             'render with; set one or choose a template such as vicuna_v1')
        return replace(self, tokenizer=tokenizer, jinja=jinja)

    def _tokenizer(self, tokenizer=None):
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError(f"template {self.name} renders with a tokenizer's own chat_template; bind it "
                             'first: template.bind(tokenizer)')
        return tokenizer

    # --- rendering --------------------------------------------------------------------------
    @staticmethod
    def _chat(messages: Sequence[dict], system_message: Optional[str]) -> List[dict]:
        chat = []
        for message in messages:
            if message['from'] not in ROLES:
                raise ValueError(f"unknown role {message['from']!r} (expected human or gpt after an optional system)")
            chat.append({'role': ROLES[message['from']], 'content': message['value']})
        if system_message and not (chat and chat[0]['role'] == 'system'):
            chat.insert(0, {'role': 'system', 'content': system_message})
        return chat

    def _apply(self, tokenizer, chat: List[dict], add_generation_prompt: bool = False) -> str:
        """The chat rendered with string contents, or, for templates that read content parts (llava-hf's
        processors: images first, then text), with each `<image>` tag as an image part."""
        render = lambda c: tokenizer.apply_chat_template(c, chat_template=self.jinja, tokenize=False,  # noqa: E731
                                                          add_generation_prompt=add_generation_prompt)
        text = render(chat)
        if all(m['content'].replace(IMAGE_TAG, '').strip() in text for m in chat):
            return text
        return render([{'role': m['role'], 'content': _parts(m['content'])} for m in chat])

    def render(self, conversations: Sequence[dict], system_message: str = None,
               add_generation_prompt: bool = False, tokenizer=None) -> str:
        return self._apply(self._tokenizer(tokenizer), self._chat(conversations, system_message),
                           add_generation_prompt)

    def chat_prompt(self, history, question: str, system_message: str = None, tokenizer=None) -> str:
        messages = []
        for old_question, old_answer in history or []:
            messages += [{'from': 'human', 'value': old_question}, {'from': 'gpt', 'value': old_answer}]
        messages.append({'from': 'human', 'value': question})
        return self.render(messages, system_message, True, tokenizer)

    def chat_template(self, system_message: str = None, image_text: str = '<image>\n') -> str:
        """The base's own chat_template, unchanged."""
        return self.jinja or self._tokenizer().chat_template

    def processor_chat_template(self, system_message: str = None, image_token: str = IMAGE_TAG) -> str:
        return self.jinja or self._tokenizer().chat_template

    @property
    def end_token(self) -> str:
        return self.stop_tokens[0] if self.stop_tokens else self._tokenizer().eos_token

    def prepare(self, conversations: Sequence[dict], n_images: int) -> List[dict]:
        return move_image_tags(conversations, n_images)   # `<image>\n` first in its turn, as llava-hf prompts

    # --- labels -------------------------------------------------------------------------------
    def _spans(self, tokenizer, chat: List[dict]):
        """-> (full text, [(start, end)] trained character spans or None, problem or None)."""
        try:
            full = self._apply(tokenizer, chat)
        except Exception as exc:  # jinja's TemplateError and raise_exception() from the template itself
            raise SampleRejected(f"{self.name}: the tokenizer's chat_template cannot render this sample ({exc})") from None
        spans = []
        for i, message in enumerate(chat):
            if message['role'] != 'assistant':
                continue
            try:
                head, done = self._apply(tokenizer, chat[:i], True), self._apply(tokenizer, chat[:i + 1])
            except Exception as exc:
                return full, None, f'assistant turn {i}: the chat_template cannot render the conversation up to it ({exc})'
            if not (full.startswith(head) and full.startswith(done)):
                return full, None, (f'assistant turn {i}: the chat_template does not render the conversation up to '
                                    'it as a prefix of the whole')
            start = done.find(message['content'].strip(), len(head))
            if start < 0:
                return full, None, f'assistant turn {i}: its content is not in the rendered turn'
            spans.append((start, len(done.rstrip())))
        return full, spans, None

    def segments(self, conversations: Sequence[dict], system_message: str = None) -> List[Segment]:
        full, spans, problem = self._spans(self._tokenizer(), self._chat(conversations, system_message))
        if problem:
            return [Segment(full)]
        segments, position = [], 0
        for start, end in spans:
            segments += [Segment(full[position:start]), Segment(full[start:end], trained=True)]
            position = end
        return [s for s in segments + [Segment(full[position:])] if s.text]

    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        """Tokenized as `apply_chat_template(tokenize=True)` does (no added specials: the template writes
        them); each `<image>` as `image`."""
        chat = self._chat(messages, system_message)
        full, spans, problem = self._spans(tokenizer, chat)

        def encode(text):
            return tokenizer(text.replace(IMAGE_TAG, image), add_special_tokens=False).input_ids

        ids = encode(full)
        labels = [IGNORE_INDEX] * len(ids)
        if problem:
            return ids, labels, [f'{problem}; sample masked ({self.name} rule)']
        answers = [m['content'] for m in chat if m['role'] == 'assistant']
        for (start, end), answer in zip(spans, answers):
            first, last = _common_prefix(encode(full[:start]), ids), _common_prefix(encode(full[:end]), ids)
            trained = tokenizer.decode(ids[first:last], clean_up_tokenization_spaces=False)
            if answer.strip() not in trained:
                return ids, [IGNORE_INDEX] * len(ids), [
                    f'an answer does not survive tokenization of the chat_template text ({trained!r}); '
                    f'sample masked ({self.name} rule)']
            labels[first:last] = ids[first:last]
        return ids, labels, []


def _parts(content: str) -> List[dict]:
    """'<image>\\nWhat is it?' -> [{'type': 'image'}, {'type': 'text', 'text': 'What is it?'}]."""
    parts, pieces = [], content.split(IMAGE_TAG)
    for i, piece in enumerate(pieces):
        if i:
            parts.append({'type': 'image'})
        text = piece.lstrip('\n') if i else piece
        if text:
            parts.append({'type': 'text', 'text': text})
    return parts


def _common_prefix(a: List[int], b: List[int]) -> int:
    return len(os.path.commonprefix([a, b]))  # works on any sequences, token ids included


register(HFChatTemplate('hf_chat_template', '', '', ('', ''), '', image_tokens=LLAVA_IMAGE, added_tokens=LLAVA_ADDED))
