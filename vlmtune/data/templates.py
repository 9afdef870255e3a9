"""Conversation templates as segments, each marked trained or masked (format doc §7, §8).

The strings come from the exported `conversation.py` (one source of truth for prompts in training,
`chat()` and the tokenizer's chat_template). Rendering a conversation gives
`system_template.format(system) + sep`, then `role + value + sep` per turn; in assistant turns the
value and the end-of-turn token are trained, the role header and anything after the end token
(internvl2_5's `\\n`) are masked.
"""
from dataclasses import dataclass
from typing import List

from ..formats.internvl_remote.conversation import get_conv_template

TEMPLATES = ('internvl2_5', 'Hermes-2', 'internlm2-chat', 'phi3-chat')
# internlm2-chat's official preprocessing strips every message value.
STRIP_VALUES = {'internlm2-chat'}
# Templates whose training sequence starts with the tokenizer's BOS (masked) when it has one.
BOS_TEMPLATES = {'internvl2_5', 'internlm2-chat', 'phi3-chat'}


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool = False


def template_for(config) -> str:
    """The template name of a model config (dict or object)."""
    name = config.get('template') if isinstance(config, dict) else getattr(config, 'template', None)
    if name not in TEMPLATES:
        raise ValueError(f'template {name!r} is not one of {TEMPLATES}')
    return name


def render_segments(template_name: str, conversations: List[dict], system_message: str = None) -> List[Segment]:
    """conversations: [{'from': 'system'|'human'|'gpt', 'value': str}, ...] (system optional, first)."""
    conv = get_conv_template(template_name)
    messages = list(conversations)
    system = conv.system_message if system_message is None else system_message
    if messages and messages[0]['from'] == 'system':
        system = messages.pop(0)['value']
    user_role, assistant_role = conv.roles
    end_token = conv.sep.strip()
    after_end = conv.sep[conv.sep.index(end_token) + len(end_token):]
    segments = [Segment(conv.system_template.format(system_message=system) + conv.sep)]
    for message in messages:
        value = message['value'].strip() if template_name in STRIP_VALUES else message['value']
        if message['from'] == 'human':
            segments.append(Segment(user_role + value + conv.sep))
        elif message['from'] == 'gpt':
            segments.append(Segment(assistant_role))
            segments.append(Segment(value + end_token, trained=True))
            if after_end:
                segments.append(Segment(after_end))
        else:
            raise ValueError(f"unknown role {message['from']!r} (expected human or gpt after an optional system)")
    return segments


def render_prompt(template_name: str, conversations: List[dict], system_message: str = None,
                  add_generation_prompt: bool = False) -> str:
    text = ''.join(s.text for s in render_segments(template_name, conversations, system_message))
    if add_generation_prompt:
        text += get_conv_template(template_name).roles[1]
    return text
