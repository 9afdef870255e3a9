"""Tokenizer loading and saving for official-format folders.

* InternLM2 folders use the SentencePiece slow tokenizer; we load it with our own class rather than
  executing the folder's Python file.
* Saved folders carry a Jinja `chat_template` that renders exactly the model's conversation template
  (system message included), which LMDeploy and `apply_chat_template` use.
* `tokenizer.json` is rewritten with BPE merges as "a b" strings: tokenizers >= 0.20 writes pairs,
  which the official environment's tokenizers 0.15 cannot parse; both versions read strings.
"""
import json
from pathlib import Path

from transformers import AutoTokenizer

from ..formats.internvl_remote.conversation import get_conv_template
from ..formats.internvl_remote.tokenization_internlm2 import InternLM2Tokenizer

INTERNVL_TOKENS = ['<img>', '</img>', '<IMG_CONTEXT>', '<quad>', '</quad>', '<ref>', '</ref>', '<box>', '</box>']
INTERNLM2_AUTO_MAP = {'AutoTokenizer': ['tokenization_internlm2.InternLM2Tokenizer', None]}


def is_internlm2_tokenizer(folder) -> bool:
    cfg_path = Path(folder) / 'tokenizer_config.json'
    cfg = json.loads(cfg_path.read_text(encoding='utf-8')) if cfg_path.exists() else {}
    return 'InternLM2' in str(cfg.get('tokenizer_class', '')) or 'internlm2' in json.dumps(cfg.get('auto_map', {}))


def load_tokenizer(folder):
    folder = Path(folder)
    if is_internlm2_tokenizer(folder):
        if not (folder / 'tokenizer.model').exists():
            raise FileNotFoundError(f'{folder / "tokenizer.model"}: missing (InternLM2 tokenizers need it)')
        return InternLM2Tokenizer.from_pretrained(str(folder))
    if not any((folder / name).exists() for name in ('tokenizer.json', 'vocab.json', 'tokenizer.model')):
        raise FileNotFoundError(f'{folder}: no tokenizer files (tokenizer.json, vocab.json+merges.txt '
                                f'or tokenizer.model)')
    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


def _jinja_literal(text: str) -> str:
    return "'" + text.replace('\\', '\\\\').replace("'", "\\'") + "'"


def chat_template_jinja(template_name: str, system_message: str = None) -> str:
    """Jinja rendering `Conversation.get_prompt()` for messages [{role, content}] (string content;
    list content takes its text parts and an `<image>` per image part)."""
    conv = get_conv_template(template_name)
    system = system_message if system_message is not None else conv.system_message
    prefix, _ = conv.system_template.split('{system_message}')
    user, assistant, sep = (_jinja_literal(x) for x in (*conv.roles, conv.sep))
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
        "{%- else -%}{%- set system_message = " + _jinja_literal(system) + " -%}"
        "{%- set loop_messages = messages -%}{%- endif -%}"
        "{{- " + _jinja_literal(prefix) + " + system_message + " + sep + " -}}"
        "{%- for message in loop_messages -%}"
        "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
        "{%- else -%}{%- set content = namespace(text='') -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{%- set content.text = content.text + part['text'] -%}"
        "{%- else -%}{%- set content.text = content.text + '<image>\\n' -%}{%- endif -%}"
        "{%- endfor -%}{%- set content = content.text -%}{%- endif -%}"
        "{%- if message['role'] == 'user' -%}{{- " + user + " + content + " + sep + " -}}"
        "{%- elif message['role'] == 'assistant' -%}{{- " + assistant + " + content + " + sep + " -}}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + assistant + " -}}{%- endif -%}"
    )


def _legacy_merges(tokenizer_json: Path) -> None:
    data = json.loads(tokenizer_json.read_text(encoding='utf-8'))
    model = data.get('model', {})
    if model.get('type') == 'BPE':
        model['merges'] = [' '.join(m) if isinstance(m, list) else m for m in model.get('merges', [])]
        model.pop('ignore_merges', None)
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding='utf-8')


def save_tokenizer(tokenizer, out_dir, template_name: str, system_message: str = None) -> None:
    out_dir = Path(out_dir)
    tokenizer.save_pretrained(str(out_dir))
    for stray in ('chat_template.json', 'chat_template.jinja'):
        (out_dir / stray).unlink(missing_ok=True)
    cfg_path = out_dir / 'tokenizer_config.json'
    cfg = json.loads(cfg_path.read_text(encoding='utf-8'))
    cfg['chat_template'] = chat_template_jinja(template_name, system_message)
    if isinstance(tokenizer, InternLM2Tokenizer):
        cfg['tokenizer_class'] = 'InternLM2Tokenizer'
        cfg['auto_map'] = INTERNLM2_AUTO_MAP
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding='utf-8')
    if (out_dir / 'tokenizer.json').exists():
        _legacy_merges(out_dir / 'tokenizer.json')
