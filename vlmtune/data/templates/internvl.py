"""The InternVL family's templates (format doc §7, §8): ChatML-style `internvl2_5`, `Hermes-2`,
`internlm2-chat` and `phi3-chat`. Hermes-2 and internlm2-chat render the same strings; they differ
in their label rules (internlm2-chat strips values, Hermes-2 keeps no BOS)."""
from . import register
from .base import Template

# System messages, verbatim from the official releases.
SYSTEM_MESSAGE_V2 = ('你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, '
                     '是一个有用无害的人工智能助手。')
SYSTEM_MESSAGE_V25 = ('你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位'
                      '联合开发的多模态大语言模型。')

CHATML_SYSTEM = '<|im_start|>system\n'
CHATML_ROLES = ('<|im_start|>user\n', '<|im_start|>assistant\n')
CHATML_TOKENS = ('<|im_start|>', '<|im_end|>')
PHI3_TOKENS = ('<|system|>', '<|user|>', '<|assistant|>', '<|end|>')

register(Template('internvl2_5', CHATML_SYSTEM, SYSTEM_MESSAGE_V25, CHATML_ROLES, '<|im_end|>\n',
                  stop_tokens=('<|im_end|>',), special_tokens=CHATML_TOKENS))
register(Template('Hermes-2', CHATML_SYSTEM, SYSTEM_MESSAGE_V2, CHATML_ROLES, '<|im_end|>',
                  stop_tokens=('<|im_end|>',), keep_bos=False, special_tokens=CHATML_TOKENS))
register(Template('internlm2-chat', CHATML_SYSTEM, SYSTEM_MESSAGE_V2, CHATML_ROLES, '<|im_end|>',
                  stop_tokens=('<|im_end|>',), strip_values=True, special_tokens=CHATML_TOKENS))
register(Template('phi3-chat', '<|system|>\n', SYSTEM_MESSAGE_V2, ('<|user|>\n', '<|assistant|>\n'), '<|end|>',
                  stop_tokens=('<|end|>',), special_tokens=PHI3_TOKENS))
