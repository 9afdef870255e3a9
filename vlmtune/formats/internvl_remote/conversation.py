"""Conversation templates of InternVL chat models (MPT separator style).

Self-contained: this file is copied verbatim into every exported checkpoint folder as
`conversation.py`, so it may import nothing outside the standard library.
"""
import dataclasses
from typing import List, Optional, Tuple

# System messages, verbatim from the official releases.
SYSTEM_MESSAGE_V2 = ('你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, '
                     '是一个有用无害的人工智能助手。')
SYSTEM_MESSAGE_V25 = ('你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位'
                      '联合开发的多模态大语言模型。')


@dataclasses.dataclass
class Conversation:
    """A prompt under construction: `system_template.format(system_message) + sep`, then
    `role + message + sep` per filled turn and a bare `role` for the open one."""
    name: str
    system_template: str
    system_message: str
    roles: Tuple[str, str]
    sep: str
    messages: List[list] = dataclasses.field(default_factory=list)
    stop_str: Optional[str] = None
    stop_token_ids: Optional[List[int]] = None

    def get_prompt(self) -> str:
        ret = self.system_template.format(system_message=self.system_message) + self.sep
        for role, message in self.messages:
            if message:
                ret += role + message + self.sep
            else:
                ret += role
        return ret

    def set_system_message(self, system_message: str):
        self.system_message = system_message

    def append_message(self, role: str, message: Optional[str]):
        self.messages.append([role, message])

    def copy(self) -> 'Conversation':
        return dataclasses.replace(self, messages=[list(m) for m in self.messages],
                                   stop_token_ids=list(self.stop_token_ids or []) or None)


_CHATML_ROLES = ('<|im_start|>user\n', '<|im_start|>assistant\n')
conv_templates = {
    'internvl2_5': Conversation('internvl2_5', '<|im_start|>system\n{system_message}', SYSTEM_MESSAGE_V25,
                                _CHATML_ROLES, '<|im_end|>\n'),
    'Hermes-2': Conversation('Hermes-2', '<|im_start|>system\n{system_message}', SYSTEM_MESSAGE_V2,
                             _CHATML_ROLES, '<|im_end|>', stop_str='<|endoftext|>',
                             stop_token_ids=[2, 6, 7, 8]),
    'internlm2-chat': Conversation('internlm2-chat', '<|im_start|>system\n{system_message}', SYSTEM_MESSAGE_V2,
                                   _CHATML_ROLES, '<|im_end|>', stop_token_ids=[2, 92543, 92542]),
    'phi3-chat': Conversation('phi3-chat', '<|system|>\n{system_message}', SYSTEM_MESSAGE_V2,
                              ('<|user|>\n', '<|assistant|>\n'), '<|end|>', stop_token_ids=[2, 32000, 32007]),
}


def get_conv_template(name: str) -> Conversation:
    if name not in conv_templates:
        raise KeyError(f'unknown conversation template {name!r}; known: {sorted(conv_templates)}')
    return conv_templates[name].copy()
