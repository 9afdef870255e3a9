"""One definition per conversation template: roles, separators, system message, stop tokens and the
label-masking rule. The training segments (what is trained, what is masked), the chat prompt and
the tokenizer's Jinja `chat_template` are all rendered from it, so they cannot drift apart.

Rendering (MPT style, the InternVL family's): `system_prefix + system + sep`, then `role + value +
sep` per turn (`sep2` after assistant turns when a template has two separators), and the bare
assistant role for the open turn of a chat prompt. In assistant turns the value and the end-of-turn
token are trained; the role header and whatever follows the end token in the separator are masked.
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

from ..image.tokens import IMAGE_TAG, INTERNVL_ADDED, INTERNVL_IMAGE
from ..rejects import IGNORE_INDEX, SampleRejected



@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool = False


@dataclass(frozen=True)
class Template:
    name: str
    system_prefix: str              # text before the system message
    system_message: str             # default system message
    roles: Tuple[str, str]          # user and assistant turn headers
    sep: str                        # ends the system block and every turn
    sep2: Optional[str] = None      # ends assistant turns, for two-separator templates
    stop_tokens: Tuple[str, ...] = ()   # end generation; the first is the trained end-of-turn token
    strip_values: bool = False      # label rule: message values are .strip()ped before rendering
    keep_bos: bool = True           # label rule: a tokenizer that adds BOS gets one (masked) in front
    open_role: Optional[str] = None  # the open assistant turn's header when it differs from roles[1]
    image_tokens: Tuple[str, str, str] = INTERNVL_IMAGE   # (start, context, end) an image becomes
    added_tokens: Tuple[str, ...] = INTERNVL_ADDED         # what the family adds to an LLM's tokenizer
    special_tokens: Tuple[str, ...] = ()  # the format's own special tokens (end-of-turn last) a tokenizer needs

    @property
    def end_token(self) -> str:
        return self.stop_tokens[0] if self.stop_tokens else self.assistant_sep.strip()

    @property
    def assistant_sep(self) -> str:
        return self.sep2 if self.sep2 is not None else self.sep

    def _system(self, messages: List[dict], system_message: Optional[str]):
        system = self.system_message if system_message is None else system_message
        if messages and messages[0]['from'] == 'system':
            system = messages.pop(0)['value']
        return Segment(self.system_prefix + system + self.sep)

    def segments(self, conversations: Sequence[dict], system_message: str = None) -> List[Segment]:
        """conversations: [{'from': 'system'|'human'|'gpt', 'value': str}, ...] (system optional, first)."""
        messages = list(conversations)
        segments = [self._system(messages, system_message)]
        sep = self.assistant_sep
        after_end = sep[sep.index(self.end_token) + len(self.end_token):] if self.end_token in sep else ''
        for message in messages:
            value = message['value'].strip() if self.strip_values else message['value']
            if message['from'] == 'human':
                segments.append(Segment(self.roles[0] + value + self.sep))
            elif message['from'] == 'gpt':
                segments.append(Segment(self.roles[1]))
                segments.append(Segment(value + self.end_token, trained=True))
                if after_end:
                    segments.append(Segment(after_end))
            else:
                raise ValueError(f"unknown role {message['from']!r} (expected human or gpt after an optional system)")
        return segments

    @property
    def generation_role(self) -> str:
        return self.roles[1] if self.open_role is None else self.open_role

    def render(self, conversations: Sequence[dict], system_message: str = None,
               add_generation_prompt: bool = False) -> str:
        text = ''.join(s.text for s in self.segments(conversations, system_message))
        return text + self.generation_role if add_generation_prompt else text

    def chat_inputs(self, tokenizer, queries):
        """What chat() feeds the model for a prompt (images already expanded) or a list of prompts
        (left-padded): {'input_ids', 'attention_mask'} tensors. InternVL's chat() tokenizes the whole
        prompt; a family whose training tokenizes otherwise (LLaVA's per-piece rule) overrides this."""
        return tokenizer(queries, return_tensors='pt', padding=isinstance(queries, list))

    def configure(self, settings: dict) -> 'Template':
        """The template with a spec's settings applied (the system message is the spec's own concern)."""
        return self

    def tiny_settings(self) -> dict:
        """What a tiny model's spec needs to use this template (tiny tokenizers carry no chat_template)."""
        return {}

    def bind(self, tokenizer) -> 'Template':
        """The template as used with `tokenizer`: itself, except for templates that render with the
        tokenizer's own chat_template (hf_chat_template), which keep the tokenizer."""
        return self

    # --- training encoding: a template may override these two with its family's own rules -----
    def prepare(self, conversations: Sequence[dict], n_images: int) -> List[dict]:
        """Copy the messages and place the image tags: a single image without a tag gets `<image>\\n`
        before the first human turn; tags must then match the images."""
        messages = [dict(m) for m in conversations]
        tags = sum(m['value'].count(IMAGE_TAG) for m in messages)
        if n_images == 1 and tags == 0:
            first_human = next((m for m in messages if m['from'] == 'human'), None)
            if first_human is None:
                raise SampleRejected('no human turn to attach the image to')
            first_human['value'] = IMAGE_TAG + '\n' + first_human['value']
            tags = 1
        if tags != n_images:
            raise SampleRejected(f'{tags} <image> tag(s) but {n_images} image(s); put one <image> per image in the text')
        return messages

    def tokenize(self, tokenizer, messages: Sequence[dict], system_message: str = None, image: str = IMAGE_TAG):
        """-> (ids, labels, warnings) with each `<image>` as `image` (one placeholder per image): the
        segments tokenized one by one, trained where the template says; checked against tokenizing the
        whole prompt at once (on a mismatch the sample is masked, as the official code does)."""
        ids, labels, texts = [], [], []
        for segment in self.segments(messages, system_message):
            text = segment.text.replace(IMAGE_TAG, image)
            texts.append(text)
            piece = tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            labels += piece if segment.trained else [IGNORE_INDEX] * len(piece)
        warnings = []
        if tokenizer(''.join(texts), add_special_tokens=False).input_ids != ids:
            labels = [IGNORE_INDEX] * len(ids)
            warnings.append('segment tokenization differs from whole-prompt tokenization; sample masked')
        if self.keep_bos and adds_bos(tokenizer):
            ids, labels = [tokenizer.bos_token_id] + ids, [IGNORE_INDEX] + labels
        return ids, labels, warnings

    def chat_prompt(self, history, question: str, system_message: str = None) -> str:
        """The prompt `chat()` sends: history [(question, answer)], the new question, the open
        assistant turn. Values are not stripped (chat() sends them as given); an empty answer
        renders as a bare role, as the official prompt builder does."""
        system = self.system_message if system_message is None else system_message
        text = self.system_prefix + system + self.sep
        for old_question, old_answer in history or []:
            text += self.roles[0] + old_question + self.sep
            text += self.roles[1] + old_answer + self.assistant_sep if old_answer else self.roles[1]
        return text + self.roles[0] + question + self.sep + self.generation_role

    def chat_template(self, system_message: str = None, image_text: str = '<image>\n') -> str:
        """Jinja for messages [{role, content}] rendering what `render()` gives (string content;
        list content takes its text parts and `image_text` per image part)."""
        system = self.system_message if system_message is None else system_message
        user, assistant, sep, sep2 = (_jinja_literal(x) for x in (*self.roles, self.sep, self.assistant_sep))
        return (
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
            "{%- else -%}{%- set system_message = " + _jinja_literal(system) + " -%}"
            "{%- set loop_messages = messages -%}{%- endif -%}"
            "{{- " + _jinja_literal(self.system_prefix) + " + system_message + " + sep + " -}}"
            "{%- for message in loop_messages -%}"
            "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
            "{%- else -%}{%- set content = namespace(text='') -%}"
            "{%- for part in message['content'] -%}"
            "{%- if part['type'] == 'text' -%}{%- set content.text = content.text + part['text'] -%}"
            "{%- else -%}{%- set content.text = content.text + " + _jinja_literal(image_text, True) + " -%}{%- endif -%}"
            "{%- endfor -%}{%- set content = content.text -%}{%- endif -%}"
            "{%- if message['role'] == 'user' -%}{{- " + user + " + content + " + sep + " -}}"
            "{%- elif message['role'] == 'assistant' -%}{{- " + assistant + " + content + " + sep2 + " -}}"
            "{%- endif -%}{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- " + _jinja_literal(self.generation_role) + " -}}{%- endif -%}"
        )


    def processor_chat_template(self, system_message: str = None, image_token: str = INTERNVL_IMAGE[1]) -> str:
        """Jinja for a transformers processor (the `-hf` layouts): contents may be strings or part
        lists in every message, a `<image>` tag or an image part becomes `image_token` (which the
        processor expands), and an empty message renders its bare role, as the prompt builder does."""
        system = self.system_message if system_message is None else system_message
        user, assistant, sep, sep2, image = (_jinja_literal(x, True) for x in
                                             (*self.roles, self.sep, self.assistant_sep, image_token))
        return (
            "{%- macro render(content) -%}{%- if content is string -%}"
            "{{- content | replace(" + _jinja_literal(IMAGE_TAG) + ", " + image + ") -}}"
            "{%- else -%}{%- for part in content -%}"
            "{%- if part['type'] == 'text' -%}{{- part['text'] | replace(" + _jinja_literal(IMAGE_TAG) + ", " + image + ") -}}"
            "{%- elif part['type'] == 'image' -%}{{- " + image + " + '\\n' -}}{%- endif -%}"
            "{%- endfor -%}{%- endif -%}{%- endmacro -%}"
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system_message = render(messages[0]['content']) -%}{%- set loop_messages = messages[1:] -%}"
            "{%- else -%}{%- set system_message = " + _jinja_literal(system, True) + " -%}"
            "{%- set loop_messages = messages -%}{%- endif -%}"
            "{{- " + _jinja_literal(self.system_prefix, True) + " + system_message + " + sep + " -}}"
            "{%- for message in loop_messages -%}{%- set content = render(message['content']) -%}"
            "{%- if message['role'] == 'user' -%}{%- set role, end = " + user + ", " + sep + " -%}"
            "{%- elif message['role'] == 'assistant' -%}{%- set role, end = " + assistant + ", " + sep2 + " -%}"
            "{%- else -%}{{- raise_exception('only user and assistant turns follow the system message') -}}"
            "{%- endif -%}"
            "{%- if content -%}{{- role + content + end -}}{%- else -%}{{- role -}}{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- " + _jinja_literal(self.generation_role, True) + " -}}{%- endif -%}"
        )


@lru_cache(maxsize=64)
def adds_bos(tokenizer) -> bool:
    return tokenizer.bos_token_id is not None and tokenizer('a').input_ids[:1] == [tokenizer.bos_token_id]


def _jinja_literal(text: str, escape_newlines: bool = False) -> str:
    text = text.replace('\\', '\\\\').replace("'", "\\'")
    return "'" + (text.replace('\n', '\\n') if escape_newlines else text) + "'"
