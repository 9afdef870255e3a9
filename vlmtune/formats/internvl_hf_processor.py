"""Processor and tokenizer files of an -hf InternVL folder (`AutoProcessor.from_pretrained` ->
`InternVLProcessor` = GotOcr2 image processor + native tokenizer + chat template).

* Chat template: `Template.processor_chat_template` of the model's template, which renders the official
  prompt (system message included unless the conversation starts with one). An image part renders as
  `<IMG_CONTEXT>\\n` and a literal `<image>` in text as `<IMG_CONTEXT>`: the processor expands each
  `<IMG_CONTEXT>` into `<img>` + `<IMG_CONTEXT>` x (image_seq_length * tiles) + `</img>`, which is the
  official `<image>` expansion. No BOS in the template: the tokenizer adds it where the official one
  does (InternLM2), for `processor(text=...)` and `apply_chat_template(tokenize=True)` alike.
* Tokenizer: byte-level BPE tokenizers (Qwen2/Llama/Phi3 folders) are copied. InternLM2's SentencePiece
  tokenizer (remote `InternLM2Tokenizer`, not in transformers) becomes a `tokenizer.json` for the native
  `PreTrainedTokenizerFast`: the BPE pieces and merges of `tokenizer.model` (merge rank = piece score),
  spaces -> "▁", a dummy prefix (if the model has one) per run between added tokens, byte fallback,
  `<s>` prepended by the post-processor, added tokens at their official ids; `tokenizer.model` is kept
  for the way back. Only the identity normalizer without whitespace removal is converted (others are
  refused). Ids equal the official tokenizer's on our test texts, with and without dummy prefix.
  Differences: decoding with special tokens kept puts no spaces around them (the
  official slow tokenizer does); and the processor needs a named `video_token`, so `<video>` becomes a
  special token at id len(official tokenizer) (never fed to the model: the processor replaces it
  before tokenizing; literal "<video>" text tokenizes differently from the official one).
* Image processor: `image_processor_type` GotOcr2ImageProcessor (crop_to_patches, min/max patches =
  min/max_dynamic_patch, size = force_image_size, bicubic, ImageNet mean/std; the thumbnail is always
  on, hence the refusal of use_thumbnail false). GotOcr2's grid choice is the official one, tie-break
  included: tile counts agree everywhere we measured. Pixels at 448 px (800x600 ... 1344x1344, max 12/6):
  the PIL classes (4.57 slow `GotOcr2ImageProcessor`, 5.24 `GotOcr2ImageProcessorPil`) are within 5e-7
  of the official preprocessing; the torch-resize ones (4.57 `GotOcr2ImageProcessorFast`, 5.24's default
  torchvision backend) differ by up to 0.035 (two uint8 levels). 4.57 loads the slow class from this
  file by default. 5.x chooses the backend only at load time and defaults to torchvision, so for
  training-equal pixels there: `processor.image_processor = AutoImageProcessor.from_pretrained(folder,
  backend="pil")` (`AutoProcessor(..., backend="pil")` fails: no PIL video processor).
"""
import json
import shutil
from pathlib import Path

from ..data.image.tokens import INTERNVL_IMAGE
from ..data.normalisation import IMAGENET_MEAN, IMAGENET_STD


IMAGE_TOKENS = {'start_image_token': INTERNVL_IMAGE[0], 'end_image_token': INTERNVL_IMAGE[2],
                'context_image_token': INTERNVL_IMAGE[1], 'video_token': '<video>'}
BPE_FILES = ('tokenizer.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json')
# Official tokenizer_config keys that only make sense for the remote-code tokenizer.
DROP_TOKENIZER_KEYS = ('auto_map', 'chat_template', 'tokenizer_class', 'extra_special_tokens', 'name_or_path',
                       'tokenizer_file', 'vocab_file', 'merges_file')


def preprocessor_config(official: dict) -> dict:
    """GotOcr2 image processor settings reproducing the official tiling (see the module docstring)."""
    size = official.get('force_image_size') or official['vision_config']['image_size']
    dynamic = bool(official.get('dynamic_image_size', False))
    return {'image_processor_type': 'GotOcr2ImageProcessor', 'processor_class': 'InternVLProcessor',
            'crop_to_patches': dynamic, 'min_patches': official.get('min_dynamic_patch', 1),
            # max_patches 1 is how GotOcr2 spells "one resized tile" whatever crop_to_patches says.
            'max_patches': official.get('max_dynamic_patch', 6) if dynamic else 1,
            'size': {'height': size, 'width': size}, 'do_resize': True, 'resample': 3, 'do_rescale': True,
            'rescale_factor': 1 / 255, 'do_normalize': True, 'image_mean': list(IMAGENET_MEAN),
            'image_std': list(IMAGENET_STD), 'do_convert_rgb': True}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding='utf-8')) if path.exists() else {}


def _added_tokens(folder: Path) -> dict:
    """content -> (id, special) of the official tokenizer's added tokens."""
    cfg = _read_json(folder / 'tokenizer_config.json')
    out = {v['content']: (int(k), bool(v.get('special', True)))
           for k, v in (cfg.get('added_tokens_decoder') or {}).items()}
    for content, idx in _read_json(folder / 'added_tokens.json').items():
        out.setdefault(content, (int(idx), True))
    return out


def sentencepiece_tokenizer_json(model_file, added: dict, add_bos: bool = True, add_eos: bool = False) -> str:
    """tokenizer.json (tokenizers library) equivalent to a SentencePiece BPE model + added tokens."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    norm, trainer = proto.normalizer_spec, proto.trainer_spec
    if trainer.model_type != 2:
        raise ValueError('internvl_hf: only SentencePiece BPE models convert (this one is not BPE)')
    if norm.remove_extra_whitespaces or norm.name not in ('identity', '') or norm.precompiled_charsmap:
        raise ValueError(f'internvl_hf: SentencePiece normalizer {norm.name!r} (remove_extra_whitespaces '
                         f'{norm.remove_extra_whitespaces}) is not converted: only the identity rule is checked here')
    pieces = [(p.piece, p.type, p.score) for p in proto.pieces]
    vocab = {piece: i for i, (piece, _, _) in enumerate(pieces)}
    merges = []  # every split of a normal piece into two known pieces, ranked by the piece's score
    for i, (piece, kind, score) in enumerate(pieces):
        if kind != 1 or len(piece) < 2:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                merges.append((-score, i, vocab[left], (left, right)))
    merges = [m[-1] for m in sorted(merges)]
    unk = next(piece for piece, kind, _ in pieces if kind == 2)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                               byte_fallback=bool(trainer.byte_fallback)))
    # The slow tokenizer encodes each run between added tokens separately; tokenizers normalizes each
    # such segment separately too, so a dummy prefix is a per-segment Prepend in both.
    tok.normalizer = normalizers.Sequence(([normalizers.Prepend('▁')] if norm.add_dummy_prefix else [])
                                          + [normalizers.Replace(' ', '▁')])
    tok.decoder = decoders.Sequence([decoders.Replace('▁', ' '), decoders.ByteFallback(), decoders.Fuse()]
                                    + ([decoders.Strip(' ', 1, 0)] if norm.add_dummy_prefix else []))
    specials = {p.piece: i for i, p in enumerate(proto.pieces) if p.type in (2, 3, 4)}
    tokens = sorted([(i, c, True) for c, i in specials.items() if c not in added] +
                    [(i, c, special) for c, (i, special) in added.items()])
    for idx, content, special in tokens:
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False)
        (tok.add_special_tokens if special else tok.add_tokens)([token])
        if tok.token_to_id(content) != idx:
            raise ValueError(f'internvl_hf: added token {content!r} got id {tok.token_to_id(content)}, '
                             f'the official tokenizer has {idx}')
    bos, eos = proto.pieces[trainer.bos_id].piece, proto.pieces[trainer.eos_id].piece
    single = ([f'{bos}:0'] if add_bos else []) + ['$A:0'] + ([f'{eos}:0'] if add_eos else [])
    pair = single + ['$B:1']
    tok.post_processor = processors.TemplateProcessing(
        single=' '.join(single), pair=' '.join(pair),
        special_tokens=[(t, vocab[t]) for t in {bos, eos} if (t == bos and add_bos) or (t == eos and add_eos)])
    return tok.to_str(pretty=True)


def _write_tokenizer(official_folder: Path, out: Path, chat: str) -> dict:
    cfg = _read_json(official_folder / 'tokenizer_config.json')
    added = _added_tokens(official_folder)
    missing = [t for t in INTERNVL_IMAGE if t not in added]
    if missing:
        raise ValueError(f'internvl_hf: the tokenizer lacks {missing}')
    sentencepiece = 'InternLM2' in str(cfg.get('tokenizer_class')) or not (official_folder / 'tokenizer.json').exists()
    new = {k: v for k, v in cfg.items() if k not in DROP_TOKENIZER_KEYS}
    if sentencepiece:
        if not (official_folder / 'tokenizer.model').exists():
            raise FileNotFoundError(f'{official_folder}: no tokenizer.json and no tokenizer.model')
        (out / 'tokenizer.json').write_text(sentencepiece_tokenizer_json(
            official_folder / 'tokenizer.model', added, cfg.get('add_bos_token', True),
            cfg.get('add_eos_token', False)), encoding='utf-8')
        shutil.copy2(official_folder / 'tokenizer.model', out / 'tokenizer.model')
        new.pop('add_bos_token', None)
        new.pop('add_eos_token', None)
        new.pop('sp_model_kwargs', None)
        new['tokenizer_class'] = 'PreTrainedTokenizerFast'
        for name in ('special_tokens_map.json',):
            if (official_folder / name).exists():
                shutil.copy2(official_folder / name, out / name)
    else:
        for name in BPE_FILES:
            if (official_folder / name).exists():
                shutil.copy2(official_folder / name, out / name)
        new['tokenizer_class'] = cfg.get('tokenizer_class') or 'PreTrainedTokenizerFast'
    new['extra_special_tokens'] = dict(IMAGE_TOKENS)
    new['chat_template'] = chat
    (out / 'tokenizer_config.json').write_text(json.dumps(new, indent=2, ensure_ascii=False), encoding='utf-8')
    return added


def write_processor_files(official_folder, official: dict, out, chat: str, stop: str, tokens_per_tile: int) -> int:
    """Tokenizer, chat template, image processor, processor and generation config files from an official
    folder's tokenizer and generation files; chat: the template's processor chat template, stop: its
    end-of-turn token, tokens_per_tile: the spec's image tokens per tile. -> image_token_id."""
    official_folder, out = Path(official_folder), Path(out)
    added = _write_tokenizer(official_folder, out, chat)
    (out / 'chat_template.jinja').write_text(chat, encoding='utf-8')
    pre = preprocessor_config(official)
    (out / 'preprocessor_config.json').write_text(json.dumps(pre, indent=2), encoding='utf-8')
    (out / 'processor_config.json').write_text(json.dumps(
        {'processor_class': 'InternVLProcessor', 'image_seq_length': tokens_per_tile}, indent=2))
    generation = _read_json(official_folder / 'generation_config.json')
    for key in ('transformers_version', '_from_model_config'):  # ours, not derived from the model config
        generation.pop(key, None)
    eos = generation.get('eos_token_id', official['llm_config'].get('eos_token_id'))
    eos = list(eos) if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos])
    if stop in added and added[stop][0] not in eos:
        eos.append(added[stop][0])
    generation['eos_token_id'] = eos
    (out / 'generation_config.json').write_text(json.dumps(generation, indent=2), encoding='utf-8')
    return added[INTERNVL_IMAGE[1]][0]
