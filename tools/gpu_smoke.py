#!/usr/bin/env python
"""GPU smoke test: the same two-turn image chat through LMDeploy and through vlmtune's own model.

    python tools/gpu_smoke.py FOLDER [--image PATH] [--backend auto|turbomind|pytorch] [--vlmtune-only]

Usually run through tools/gpu_smoke.sh, which also builds a tiny folder when none is given.

What it does
  1. Front-half check (CPU, needs only `import lmdeploy`): LMDeploy's own message conversion,
     preprocessing, chat template and packing (InternVLVisionModel.preprocess + to_pytorch) must
     give exactly the token ids of the queries vlmtune's `model.chat()` builds (turn 1, and turn 2
     as sent by the stateless call below).
  2. vlmtune: `formats.load(folder)`, pixel values from the model's image processor, two `model.chat()` turns,
     greedy, `max_new_tokens` tokens.
  3. LMDeploy (GPU only): `pipeline(folder, backend_config=TurbomindEngineConfig(...))`
     (PytorchEngineConfig for Phi3, which TurboMind does not serve), then
       turn 1            pipe.chat((image, q1))           compared with vlmtune turn 1
       turn 2 stateful   pipe.chat(q2, session=...)       printed; compared only with --strict-stateful
       turn 2 stateless  pipe.infer(full conversation)    compared with vlmtune turn 2
     The pair is passed image-first: LMDeploy puts the image where it sits in the message, and
     official/vlmtune chat() sends `<image>\\n` + question. (`pipe.chat((q, image))` would put the
     image after the question -> a different prompt.)
     Why turn 2 is checked stateless: in 0.12-0.14 pipe.chat is stateful; the next turn continues
     the KV cache after the generated ids *without* the stop token (session.step excludes it), so
     the model never sees `<|im_end|>` (+ `\\n` for internvl2_5) after answer 1, whereas chat()
     re-renders the whole history as text. The stateless call renders the full conversation
     (answer 1 = vlmtune's) through the chat template, which is the prompt chat() builds.
  4. Prints the answers side by side, PASS/FAIL. Exit 0 = PASS, 1 = FAIL, 2 = cannot run.

Caveats when reading a FAIL: LMDeploy runs the ViT in fp16 (TurboMind) or `--dtype`, the LLM in
`--dtype`; vlmtune runs in `--dtype` too but with other kernels. A random-weight tiny model has
near-tied logits, so one flipped greedy pick can make the texts differ without any format bug; the
script prints the common prefix. Also: LMDeploy stops on every id in its stop set (tokenizer eos,
generation_config.json eos_token_id), chat() only on the template's end token; InternLM2's `</s>`
is in the first set only.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_PASS, EXIT_FAIL, EXIT_SETUP = 0, 1, 2
DEFAULT_Q1 = 'What is in the image?'
DEFAULT_Q2 = 'What color is it?'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('folder', help='official-format InternVL folder')
    p.add_argument('--image', help='image file (default: a synthetic 800x600 PNG)')
    p.add_argument('--q1', default=DEFAULT_Q1)
    p.add_argument('--q2', default=DEFAULT_Q2)
    p.add_argument('--max-new-tokens', type=int, default=16)
    p.add_argument('--backend', choices=['auto', 'turbomind', 'pytorch'], default='auto',
                   help='auto: turbomind, or pytorch for a Phi3 LLM')
    p.add_argument('--dtype', choices=['float16', 'bfloat16', 'float32'], default=None,
                   help='LLM dtype on both sides (default: float16 on GPU, float32 for --vlmtune-only on CPU)')
    p.add_argument('--device', default=None, help='vlmtune device (default: cuda if available, else cpu)')
    p.add_argument('--session-len', type=int, default=4096)
    p.add_argument('--cache-max-entry-count', type=float, default=0.2)
    p.add_argument('--vlmtune-only', action='store_true',
                   help='CPU-capable: vlmtune chat + LMDeploy front-half check (when lmdeploy imports); no engine')
    p.add_argument('--strict-stateful', action='store_true',
                   help='also require the stateful pipe.chat turn 2 to match')
    return p.parse_args(argv)


def folder_info(folder: Path) -> dict:
    cfg = json.loads((folder / 'config.json').read_text(encoding='utf-8'))
    vision = cfg.get('vision_config', {})
    return dict(arch=(cfg.get('architectures') or [None])[0],
                llm_arch=(cfg.get('llm_config', {}).get('architectures') or [None])[0],
                template=cfg.get('template'),
                image_size=cfg.get('force_image_size') or vision.get('image_size'),
                min_num=cfg.get('min_dynamic_patch', 1), max_num=cfg.get('max_dynamic_patch', 12),
                use_thumbnail=bool(cfg.get('use_thumbnail', True)), torch_dtype=cfg.get('torch_dtype'))


def write_default_image(path: Path) -> Path:
    """Deterministic 800x600 picture: gradient background, a red disc, a blue bar."""
    import numpy as np
    from PIL import Image, ImageDraw
    yy, xx = np.mgrid[0:600, 0:800]
    rgb = np.stack([xx * 255 // 799, yy * 255 // 599, np.full_like(xx, 96)], axis=-1).astype(np.uint8)
    img = Image.fromarray(rgb, 'RGB')
    draw = ImageDraw.Draw(img)
    draw.ellipse((220, 150, 520, 450), fill=(220, 30, 30))
    draw.rectangle((560, 80, 620, 520), fill=(20, 40, 200))
    img.save(path)
    return path


def run_vlmtune(folder, image_path, info, args, device, dtype_name):
    import torch
    from PIL import Image
    from vlmtune.formats import load

    dtype = getattr(torch, dtype_name)
    model, tok = load(folder, dtype=dtype, device=device)
    with Image.open(image_path) as image:
        pixel_values = model.spec.build_image_processor().process(image.convert('RGB')).to(device=device, dtype=dtype)
    gen = dict(max_new_tokens=args.max_new_tokens, do_sample=False)
    with torch.no_grad():
        a1, history = model.chat(tok, pixel_values, args.q1, gen, history=None, return_history=True)
        turn1_history = list(history)
        a2, history = model.chat(tok, pixel_values, args.q2, gen, history=history, return_history=True)
    n_tiles = pixel_values.shape[0]
    # the exact queries chat() tokenised for turn 1 and turn 2 (history, image tokens re-sent)
    query1 = model.image_tokens.expand(model.prompt('<image>\n' + args.q1), [n_tiles])
    query2 = model.image_tokens.expand(model.prompt(args.q2, turn1_history), [n_tiles])
    out = dict(answers=[a1, a2], n_tiles=n_tiles, turn1_history=turn1_history,
               turn1_ids=tok(query1)['input_ids'], turn2_ids=tok(query2)['input_ids'])
    del model
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return out


def conversations(image, args, turn1_answer):
    """OpenAI-style messages as this script hands them to LMDeploy (image first, like chat())."""
    user1 = {'role': 'user', 'content': [{'type': 'image_data', 'image_data': {'data': image}},
                                         {'type': 'text', 'text': args.q1}]}
    return dict(turn1=[user1],
                turn2=[user1, {'role': 'assistant', 'content': turn1_answer}, {'role': 'user', 'content': args.q2}])


def lmdeploy_front_check(folder, image_path, args, ours):
    """LMDeploy's CPU-side processing (what the PyTorch engine receives: the pipeline's message
    conversion, InternVLVisionModel.preprocess, the chat template, to_pytorch packing) vs the
    token ids of chat()'s queries, for turn 1 and for the stateless turn 2."""
    import asyncio

    from PIL import Image
    from transformers import AutoConfig
    from lmdeploy.model import HFChatTemplate, get_chat_template
    from lmdeploy.serve.processors.multimodal import MultimodalProcessor
    from lmdeploy.tokenizer import Tokenizer
    from lmdeploy.vl.model.internvl import InternVLVisionModel

    chat_template = get_chat_template(str(folder))
    if not isinstance(chat_template, HFChatTemplate):
        return False, f'get_chat_template -> {type(chat_template).__name__}, not HFChatTemplate'
    vision = InternVLVisionModel(str(folder), hf_config=AutoConfig.from_pretrained(str(folder), trust_remote_code=True),
                                 backend='pytorch')
    vision.build_preprocessor()
    tokenizer = Tokenizer(str(folder))
    with Image.open(image_path) as im:
        image = im.convert('RGB')
    convs = conversations(image, args, ours['answers'][0])
    details, ok = [], True
    for name, expected in (('turn1', ours['turn1_ids']), ('turn2', ours['turn2_ids'])):
        messages = asyncio.run(MultimodalProcessor.async_convert_multimodal_data(convs[name]))
        messages = vision.preprocess(messages)
        packed = vision.to_pytorch(messages, chat_template, tokenizer, sequence_start=True)
        ids = packed['input_ids']
        if ids == expected:
            details.append(f'{name}: {len(ids)} ids identical')
            continue
        ok = False
        first = next((i for i, (a, b) in enumerate(zip(ids, expected)) if a != b), min(len(ids), len(expected)))
        details.append(f'{name}: ids differ at {first} (lmdeploy {len(ids)}, vlmtune {len(expected)}); '
                       f'lmdeploy prompt {packed["prompt"]!r}')
    return ok, '; '.join(details)


def run_lmdeploy(folder, image_path, info, args, vlmtune_turn1_answer, dtype_name):
    from PIL import Image
    from lmdeploy import GenerationConfig, PytorchEngineConfig, TurbomindEngineConfig, pipeline

    backend = args.backend
    if backend == 'auto':
        backend = 'pytorch' if info['llm_arch'] == 'Phi3ForCausalLM' else 'turbomind'
    engine_dtype = 'float16' if dtype_name == 'float32' else dtype_name  # engines take float16/bfloat16/auto
    common = dict(dtype=engine_dtype, session_len=args.session_len, cache_max_entry_count=args.cache_max_entry_count)
    backend_config = TurbomindEngineConfig(**common) if backend == 'turbomind' else PytorchEngineConfig(**common)
    pipe = pipeline(str(folder), backend_config=backend_config, log_level='WARNING')
    try:
        actual = getattr(pipe.async_engine, 'backend', '?')
        gen = GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=False, top_k=1)
        with Image.open(image_path) as im:
            image = im.convert('RGB')
        session = pipe.chat((image, args.q1), gen_config=gen)  # image first: '<image>\n' + q1 like chat()
        resp1 = session.response
        session = pipe.chat(args.q2, session=session, gen_config=gen)
        resp2_stateful = session.response
        resp2_stateless = pipe.infer(conversations(image, args, vlmtune_turn1_answer)['turn2'], gen_config=gen)
    finally:
        pipe.close()
    return dict(requested=backend, backend=actual, responses=[resp1, resp2_stateful, resp2_stateless])


def show_pair(label, ours, theirs, extra=''):
    same = ours == theirs
    print(f'--- {label}: {"MATCH" if same else "DIFF"}{extra}')
    print(f'    vlmtune : {ours!r}')
    print(f'    lmdeploy: {theirs!r}')
    if not same:
        print(f'    common prefix: {len(os.path.commonprefix([ours, theirs]))} chars')
    return same


def describe(resp):
    return (f' (finish={getattr(resp, "finish_reason", "?")}, '
            f'tokens={getattr(resp, "generate_token_len", "?")}, ids={list(getattr(resp, "token_ids", []) or [])})')


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = Path(args.folder).resolve()
    if not (folder / 'config.json').exists():
        print(f'ERROR: {folder}: no config.json', file=sys.stderr)
        return EXIT_SETUP
    info = folder_info(folder)
    if info['arch'] != 'InternVLChatModel':
        print(f'ERROR: {folder}: architectures[0] is {info["arch"]!r}, expected InternVLChatModel', file=sys.stderr)
        return EXIT_SETUP

    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if not args.vlmtune_only and not torch.cuda.is_available():
        print('ERROR: no CUDA device; LMDeploy has no CPU engine (use --vlmtune-only here)', file=sys.stderr)
        return EXIT_SETUP
    dtype_name = args.dtype or ('float16' if device.startswith('cuda') else 'float32')
    if device == 'cpu' and dtype_name != 'float32':
        print(f'note: {dtype_name} on CPU is slow and not what LMDeploy would use', file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix='vlmtune-smoke-img-') as tmp:
        image_path = Path(args.image) if args.image else write_default_image(Path(tmp) / 'smoke.png')
        try:
            from PIL import Image
            with Image.open(image_path) as im:
                im.verify()
        except Exception as exc:  # missing file, not an image
            print(f'ERROR: {image_path}: cannot open as an image ({exc})', file=sys.stderr)
            return EXIT_SETUP
        print(f'folder   : {folder}')
        print(f'llm      : {info["llm_arch"]}  template: {info["template"]}  saved dtype: {info["torch_dtype"]}')
        print(f'image    : {image_path}  tiling: S={info["image_size"]} '
              f'min={info["min_num"]} max={info["max_num"]} thumbnail={info["use_thumbnail"]}')
        print(f'vlmtune  : device={device} dtype={dtype_name}')

        ours = run_vlmtune(folder, image_path, info, args, device, dtype_name)
        print(f'tiles    : {ours["n_tiles"]}')

        front_ok = None
        try:
            import lmdeploy
        except ImportError:
            lmdeploy = None
        if lmdeploy is None:
            if not args.vlmtune_only:
                print('ERROR: lmdeploy is not importable', file=sys.stderr)
                return EXIT_SETUP
            print('front    : skipped (lmdeploy not installed)')
        else:
            front_ok, detail = lmdeploy_front_check(folder, image_path, args, ours)
            print(f'front    : lmdeploy {lmdeploy.__version__} packing vs chat() queries: '
                  f'{"MATCH" if front_ok else "DIFF"} - {detail}')

        if args.vlmtune_only:
            print(f'--- vlmtune turn 1: {ours["answers"][0]!r}')
            print(f'--- vlmtune turn 2: {ours["answers"][1]!r}')
            verdict = front_ok is not False
            print(f'{"PASS" if verdict else "FAIL"} (vlmtune-only: no LMDeploy engine was run)')
            return EXIT_PASS if verdict else EXIT_FAIL

        theirs = run_lmdeploy(folder, image_path, info, args, ours['answers'][0], dtype_name)
        print(f'lmdeploy : backend requested={theirs["requested"]} actual={theirs["backend"]}'
              + ('  (LMDeploy fell back: TurboMind needs head_dim 64/128 and no Phi3)'
                 if theirs['requested'] != theirs['backend'] else ''))
        r1, r2s, r2 = theirs['responses']
        # chat() strips its answer; LMDeploy's text is the raw detokenised output.
        ok1 = show_pair('turn 1', ours['answers'][0], r1.text.strip(), describe(r1))
        ok2 = show_pair('turn 2 (stateless, full history)', ours['answers'][1], r2.text.strip(), describe(r2))
        ok2s = show_pair('turn 2 (stateful pipe.chat, informational)' if not args.strict_stateful
                         else 'turn 2 (stateful pipe.chat)', ours['answers'][1], r2s.text.strip(), describe(r2s))
        verdict = bool(front_ok) and ok1 and ok2 and (ok2s or not args.strict_stateful)
        print('PASS' if verdict else 'FAIL')
        return EXIT_PASS if verdict else EXIT_FAIL


if __name__ == '__main__':
    sys.exit(main())
