"""Tokenizer loading and saving for checkpoint folders.

* InternLM2 folders use the SentencePiece slow tokenizer; it is loaded with the class the layout
  ships (internvl_remote/tokenization_internlm2.py) rather than by executing the folder's file.
* Saved folders carry a Jinja `chat_template` generated from the model's template definition
  (system message included), which LMDeploy and `apply_chat_template` use.
* `tokenizer.json` is rewritten with BPE merges as "a b" strings: tokenizers >= 0.20 writes pairs,
  which the official environment's tokenizers 0.15 cannot parse; both versions read strings.
"""
import json
from pathlib import Path

from transformers import AutoTokenizer

from ..data.image.tokens import INTERNVL_ADDED
from .internvl_remote.tokenization_internlm2 import InternLM2Tokenizer

INTERNVL_TOKENS = list(INTERNVL_ADDED)  # (data/image/tokens.py has them, in the official finetune script's order)
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


def _legacy_merges(tokenizer_json: Path) -> None:
    data = json.loads(tokenizer_json.read_text(encoding='utf-8'))
    model = data.get('model', {})
    if model.get('type') == 'BPE':
        model['merges'] = [' '.join(m) if isinstance(m, list) else m for m in model.get('merges', [])]
        model.pop('ignore_merges', None)
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding='utf-8')


def save_tokenizer(tokenizer, out_dir, chat_template: str) -> None:
    """Tokenizer files + `chat_template` in tokenizer_config.json (no stray chat_template files)."""
    out_dir = Path(out_dir)
    tokenizer.save_pretrained(str(out_dir))
    for stray in ('chat_template.json', 'chat_template.jinja'):
        (out_dir / stray).unlink(missing_ok=True)
    cfg_path = out_dir / 'tokenizer_config.json'
    cfg = json.loads(cfg_path.read_text(encoding='utf-8'))
    cfg['chat_template'] = chat_template
    if isinstance(tokenizer, InternLM2Tokenizer):
        cfg['tokenizer_class'] = 'InternLM2Tokenizer'
        cfg['auto_map'] = INTERNLM2_AUTO_MAP
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding='utf-8')
    if (out_dir / 'tokenizer.json').exists():
        _legacy_merges(out_dir / 'tokenizer.json')


def add_image_tokens(tokenizer, tokens=INTERNVL_TOKENS) -> int:
    """Add the tokens a family's image blocks need (the template's `added_tokens`; as special tokens,
    the official way); -> count added."""
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    return tokenizer.add_tokens(missing, special_tokens=True) if missing else 0
