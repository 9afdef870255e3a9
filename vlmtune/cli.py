"""`vlmtune` command line: one subcommand per step of the journey."""
import argparse
import json
import sys
from functools import partial
from pathlib import Path

from .cli_data import cmd_data_check, cmd_data_show
from .cli_help import DefaultsHelpFormatter


def cmd_inspect(args) -> int:
    from .formats.inspect import format_report, inspect_folder
    info = inspect_folder(args.folder)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_report(info))
    return 0


def say_caveat(layout, spec):
    from .formats import owner_caveat
    caveat = owner_caveat(layout, spec)
    if caveat:
        print(f'note: {caveat}')


def cmd_resave(args) -> int:
    import torch
    from .formats import layout_of, load, save
    from .formats.common import stored_dtype
    dtype = args.dtype or stored_dtype(args.src)  # the source's own unless asked: an fp32 folder stays fp32
    model, tokenizer = load(args.src, dtype=torch.float32)
    layout = args.to or layout_of(args.src)
    out = save(model, tokenizer, args.out, layout=layout, dtype=dtype, base_folder=args.src,
               overwrite=args.overwrite, max_shard_size_gb=args.max_shard_gb)
    print(f'wrote {out} ({layout} layout, {dtype})')
    say_caveat(layout, model.spec)
    return 0


def cmd_data_convert(args) -> int:
    from datasets_proc.__main__ import main as convert_main
    return convert_main(args.rest, prog='vlmtune data convert')


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(args.work_dir, args.rebuild_base, args.quick)
    return 0


def cmd_train(args) -> int:
    from .quiet import quiet_imports
    with quiet_imports():
        from .engine.launch import length_options, shortcut_options, train
    options = shortcut_options(args.checkpoint, args.data, args.images, args.vision_tower, args.llm, args.meta) + \
        length_options(args.iters, args.epochs) + list(args.cfg_options or []) + \
        (['train_dataloader.dataset.strict=True'] if args.strict else [])
    resume = True if args.resume == 'auto' else args.resume
    if args.verbose:
        import os
        os.environ['VLMTUNE_VERBOSE'] = '1'
    return train(args.recipe, args.deepspeed, options, args.work_dir, resume, args.nproc, args.seed)


def cmd_list_cfg(args) -> int:
    from .engine.recipes import format_listing, list_recipes
    rows = list_recipes(args.pattern)
    if not rows:
        print(f'no shipped recipe matches {args.pattern!r}; vlmtune list-cfg without a pattern lists them all', file=sys.stderr)
        return 1
    print(format_listing(rows))
    return 0


def cmd_copy_cfg(args) -> int:
    from .engine.recipes import copy_recipe
    print(f'wrote {copy_recipe(args.name, args.dest)}')
    return 0


def cmd_convert(args) -> int:
    from .engine.convert import convert
    from .engine.launch import shortcut_options
    from .engine.recipes import resolve
    args.cfg_options = shortcut_options(args.base, vision_tower=args.vision_tower, llm=args.llm) + \
        list(args.cfg_options or [])
    recipe = resolve(args.recipe)  # a file or a shipped name; an unknown name fails before any work
    try:
        result = convert(recipe, args.checkpoint, args.out, args.dtype, verify=not args.no_verify,
                         overwrite=args.overwrite, cfg_options=args.cfg_options or (), device=args.device,
                         layout=args.to, adapter_only=args.adapter_only)
    except AssertionError as exc:
        print(f'{exc}; no folder written', file=sys.stderr)
        return 1
    if result['max_diff'] is not None:
        print(f"self-check PASS: max |logit diff| {result['max_diff']:.3g} <= {result['tolerance']:.3g} "
              f"(reloaded {args.dtype} folder vs unmerged model)")
    print(f"wrote {result['out']} ({result['layout']} layout)")
    if result.get('caveat'):
        print(f"note: {result['caveat']}")
    return 0


def cmd_serve(args) -> int:
    from .serve.engines import serve
    lora = dict(item.split('=', 1) for item in args.lora) if args.lora else None
    return serve(args.folder, args.engine, args.host, args.port, args.max_model_len, lora)


def cmd_eval(args) -> int:
    if args.model in EVAL_ACTIONS:
        return EVAL_ACTIONS[args.model](args)
    if not args.bench:
        if len(args.data) != 1:
            raise ValueError('vlmtune eval MODEL DATA (conversation JSONL), or MODEL --bench NAME FILE')
        args.bench = ('conversations', args.data[0])  # the conversation JSONL is the `conversations` benchmark
    return eval_benchmark(args)


def eval_benchmark(args) -> int:
    from .bench.run import run_benchmark, write_results
    from .serve import pipeline
    name, path = args.bench
    out = Path(args.out or Path('work_dirs') / 'eval' / Path(args.model).resolve().name / name)
    if args.backend.startswith(('http://', 'https://')):   # a served model: --backend http://HOST:PORT/v1
        from .serve.api_client import ApiPipeline
        pipe = ApiPipeline(args.backend)
    elif args.load_bits:
        pipe = pipeline(args.model, backend='torch', load_bits=args.load_bits)
    else:
        pipe = pipeline(args.model, backend=args.backend)
    result, rows = run_benchmark(name, path, pipe, args.images, args.prompt, args.limit, args.batch_size,
                                 args.max_new_tokens, model=args.model, strict=args.strict, reader=args.reader,
                                 judge=args.judge)
    paths = write_results(result, rows, out)
    print(paths['markdown'].read_text(encoding='utf-8'))
    print(f"wrote {paths['json']}, {paths['markdown'].name}, {paths['predictions'].name} "
          f"({result['seconds']:.1f} s, {result['questions_asked']} questions)")
    if result['judged']:
        print(f"{result['judged']} output(s) no rule read were sent to the judge at {args.judge}")
    if result['unreadable_images']:
        first = next(row for row in rows if 'image_error' in row)
        print(f"warning: {result['unreadable_images']} question(s) not asked, their image unreadable (counted wrong), "
              f"e.g. {first['id']}: {first['image_error']}; --strict makes this a failure", file=sys.stderr)
    return 0


def eval_compare(args) -> int:
    from .bench.report import compare
    if len(args.data) < 2:
        raise ValueError('vlmtune eval compare A.json B.json [...]: two or more results files')
    made = compare(args.data, args.out or Path('work_dirs') / 'eval' / 'compare', args.labels)
    print(made['table'])
    print(f"wrote {made['markdown']} and {made['chart']}")
    return 0


def eval_sample(args) -> int:
    from .bench.samples import write_sample
    if len(args.data) != 2:
        raise ValueError('vlmtune eval sample NAME DIR')
    path = write_sample(args.data[0], args.data[1])
    print(f'wrote a {args.data[0]} sample: vlmtune eval MODEL --bench {args.data[0]} {path}')
    return 0


def eval_formats(args) -> int:
    from .bench.run import benchmark
    from .bench.tasks import REGISTRY
    print('| benchmark | files read | metric | default reader | prompt (question, then) |\n|---|---|---|---|---|')
    for name in REGISTRY.names():
        task = benchmark(name)
        print(f'| {name} | {task.layout} | {task.metric} | {task.reader.NAME} | {task.instruction or "(as in the data)"} |')
    return 0


EVAL_ACTIONS = {'compare': eval_compare, 'sample': eval_sample, 'formats': eval_formats}


def build_parser() -> argparse.ArgumentParser:
    from .bench.readers import READERS  # light: text rules only
    parser = argparse.ArgumentParser(prog='vlmtune', description='Fine-tune, convert and serve vision-language models.')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser = partial(sub.add_parser, formatter_class=DefaultsHelpFormatter)  # every --help shows defaults

    p = sub.add_parser('inspect', help='describe a checkpoint folder (layout, family, tiles, parameters, gaps)')
    p.add_argument('folder')
    p.add_argument('--json', action='store_true')
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser('demo', help='run the embedded default journey on a tiny model')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--rebuild-base', action='store_true', help='build the tiny base again instead of reusing it')
    p.add_argument('--quick', action='store_true', help='shortened run (fewer rows and steps), as in CI')
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser('list-cfg', help='list the shipped recipes (name, one-line description)')
    p.add_argument('pattern', nargs='?', help='case-insensitive substring or glob of the name (or folder/name)')
    p.set_defaults(func=cmd_list_cfg)

    p = sub.add_parser('copy-cfg', help='copy a shipped recipe to edit it (never overwrites)')
    p.add_argument('name', help='recipe name, as vlmtune list-cfg prints it')
    p.add_argument('dest', help='a folder or a .py path')
    p.set_defaults(func=cmd_copy_cfg)

    p = sub.add_parser('train', help='train a recipe with xtuner (returns the real exit status)')
    p.add_argument('recipe', help='a recipe file, or a shipped recipe name (vlmtune list-cfg)')
    p.add_argument('--deepspeed', help='zero2 | zero3 | zero3_offload | path.json (CPU-safe variant without GPU)')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    p.add_argument('--checkpoint', help='checkpoint folder (sets model.checkpoint and the dataset\'s)')
    p.add_argument('--vision-tower', help='vision-tower folder of a model built from parts (model and dataset spec)')
    p.add_argument('--llm', help='LLM folder of a model built from parts (model and dataset spec)')
    p.add_argument('--data', help='conversation JSONL')
    p.add_argument('--images', help='image root folder')
    p.add_argument('--meta', help='an InternVL meta file (sources with root, annotation, repeat_time, ...) in place '
                                  'of --data / --images')
    p.add_argument('--iters', type=int, help="train this many iterations (instead of the recipe's length)")
    p.add_argument('--epochs', type=float, help="train this many epochs (instead of the recipe's length)")
    p.add_argument('--work-dir')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from the work dir\'s last checkpoint, or from PATH')
    p.add_argument('--nproc', type=int, default=None, help='processes (default: $NPROC_PER_NODE or 1)')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--strict', action='store_true',
                   help='stop before training when any row of the data cannot be trained (default: skip those rows)')
    p.add_argument('--verbose', action='store_true',
                   help="show the trainer's whole output (always in WORK_DIR/train.log); or VLMTUNE_VERBOSE=1")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('convert', help='training checkpoint -> checkpoint folder (merge LoRA, self-check)')
    p.add_argument('recipe', help='a recipe file, or a shipped recipe name')
    p.add_argument('checkpoint', help='mmengine .pth or DeepSpeed iter_N.pth/ folder')
    p.add_argument('out')
    p.add_argument('--dtype', default='bf16', choices=['bf16', 'fp32'])
    p.add_argument('--no-verify', action='store_true')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--device', default='cpu')
    p.add_argument('--to', metavar='LAYOUT', help="layout to write, e.g. internvl_hf (default: the recipe's "
                                                  "save_layout, else the base folder's)")
    p.add_argument('--adapter-only', action='store_true',
                   help="write the LLM's LoRA as a PEFT adapter folder for the base (unmerged), not a merged folder")
    p.add_argument('--base', metavar='FOLDER',
                   help='the base folder the run trained from (what vlmtune train got as --checkpoint)')
    p.add_argument('--vision-tower', help='the vision-tower folder of a run built from parts')
    p.add_argument('--llm', help='the LLM folder of a run built from parts')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    p.set_defaults(func=cmd_convert)

    from .serve import terminal_chat
    p = sub.add_parser('chat', help='terminal multi-turn chat (/image PATH, /reset, /exit)')
    terminal_chat.add_arguments(p)
    p.set_defaults(func=terminal_chat.run)

    p = sub.add_parser('eval', help='benchmarks in their own formats, or accuracy on conversation JSONL',
                       description='vlmtune eval MODEL --bench NAME FILE | MODEL DATA.jsonl | compare A.json B.json '
                                   '| sample NAME DIR | formats (a model folder named like these: ./compare)')
    p.add_argument('model', help='checkpoint folder, or compare / sample / formats')
    p.add_argument('data', nargs='*', help='conversation JSONL; for compare: results files; for sample: NAME DIR')
    p.add_argument('--bench', nargs=2, metavar=('NAME', 'FILE'), help='a benchmark (vlmtune eval formats) and its file')
    p.add_argument('--images', help='image root (default: where the benchmark keeps them, beside FILE)')
    p.add_argument('--out', help='--bench / compare: output folder; JSONL: per-question results file')
    p.add_argument('--prompt', help='instruction after each question (default: the reference evaluation\'s)')
    p.add_argument('--limit', type=int, help='the first N questions (whole rotation groups / image pairs)')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--max-new-tokens', type=int, default=None)
    p.add_argument('--backend', default='auto', help='auto | torch | turbomind | pytorch | a server URL (…/v1)')
    p.add_argument('--labels', nargs='+', help='compare: one name per results file (default: their folders)')
    p.add_argument('--reader', choices=sorted(READERS), default=None,
                   help="how outputs become answers: VLMEvalKit's rules or the benchmark's own script "
                        "(default: the benchmark's, shown by `vlmtune eval formats`; results.json records it)")
    p.add_argument('--judge', metavar='URL', help="an OpenAI-compatible server (…/v1, e.g. `vlmtune serve`) asked, "
                   "with VLMEvalKit's judge prompts, about the outputs no rule reads (default: none; they count "
                   "as unanswered)")
    p.add_argument('--strict', action='store_true',
                   help='fail when a question\'s image cannot be read (default: count it wrong, ask the rest)')
    bits = p.add_mutually_exclusive_group()
    bits.add_argument('--load-4bit', dest='load_bits', action='store_const', const=4, help='LLM in 4-bit (GPU)')
    bits.add_argument('--load-8bit', dest='load_bits', action='store_const', const=8, help='LLM in 8-bit (GPU)')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('serve', help="a real engine's OpenAI-compatible server (LMDeploy on GPU, vLLM on CPU)")
    p.add_argument('folder')
    p.add_argument('--engine', default='auto', help='auto | lmdeploy | vllm')
    p.add_argument('--host', default='127.0.0.1', help='127.0.0.1 unless you mean to expose it')
    p.add_argument('--port', type=int, default=8000)
    p.add_argument('--max-model-len', type=int, default=4096)
    p.add_argument('--lora', nargs='+', metavar='NAME=ADAPTER', help='vLLM: serve adapter folders (vlmtune convert '
                                                                     '--adapter-only) beside the base')
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser('resave', help='load a checkpoint folder and write it again, in its layout or another')
    p.add_argument('src')
    p.add_argument('out')
    p.add_argument('--to', metavar='LAYOUT', help="layout to write, e.g. internvl_hf (default: the source's)")
    p.add_argument('--dtype', default=None, choices=['bf16', 'fp16', 'fp32'],
                   help="weights' dtype (default: the source folder's stored dtype)")
    p.add_argument('--max-shard-gb', type=float, default=5.0, help='largest safetensors shard (default: 5.0)')
    p.add_argument('--overwrite', action='store_true', help='replace OUT if it exists (default: refuse)')
    p.set_defaults(func=cmd_resave)

    data = sub.add_parser('data', help='convert and check datasets').add_subparsers(dest='data_command',
                                                                                    required=True)
    data.add_parser = partial(data.add_parser, formatter_class=DefaultsHelpFormatter)
    p = data.add_parser('convert', help='raw dataset -> conversation JSONL (see datasets_proc)')
    p.add_argument('rest', nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_data_convert)
    p = data.add_parser('check', help='validate a conversation JSONL (or every source of a meta file) before training')
    p.add_argument('file', nargs='?', help='conversation JSONL (or --meta)')
    p.add_argument('--images', help='image root folder (with FILE)')
    p.add_argument('--meta', help='an InternVL meta file: each source checked with its root and tile budget')
    p.add_argument('--model', help='checkpoint folder: enables the token-length check with its template')
    p.add_argument('--max-length', type=int, default=None)
    p.add_argument('--max-tiles', type=int, default=None)
    p.add_argument('--kept')
    p.add_argument('--rejects')
    p.add_argument('--quiet', action='store_true')
    p.add_argument('--min-frames', type=int, default=8, help='video rows: reject videos with fewer frames')
    p.add_argument('--pairs', action='store_true', help='preference rows (question, chosen, rejected): both answers '
                                                        'checked, identical or empty ones rejected')
    p.add_argument('--strict', action='store_true', help='exit with status 1 when any row is rejected')
    p.set_defaults(func=cmd_data_check)
    p = data.add_parser('show', help='what the model sees for one sample')
    p.add_argument('file', nargs='?', help='conversation JSONL (or --meta)')
    p.add_argument('--images', help='image root folder (with FILE)')
    p.add_argument('--meta', help='an InternVL meta file; --source picks the source (default: its first)')
    p.add_argument('--source')
    p.add_argument('--model', required=True)
    p.add_argument('--index', type=int, default=0)
    p.add_argument('--max-tiles', type=int, default=None)
    p.add_argument('--max-length', type=int, default=4096)
    p.add_argument('--json', action='store_true')
    p.add_argument('--draw', metavar='PNG', help="write the row's image with its answers' <ref>/<box> boxes drawn")
    p.set_defaults(func=cmd_data_show)
    return parser


# Errors that are the user's input, printed as one line: named, not imported, so that a command that needs
# none of these modules (list-cfg, copy-cfg, --help) starts without torch.
USER_ERRORS = {'vlmtune.formats.common.CheckpointError', 'vlmtune.serve.pipeline.NeedsGPU',
               'vlmtune.side_envs.SideEnvError'}
BUILTIN_USER_ERRORS = (FileNotFoundError, FileExistsError, IndexError, ValueError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, BUILTIN_USER_ERRORS) or \
        bool(USER_ERRORS & {f'{cls.__module__}.{cls.__qualname__}' for cls in type(exc).__mro__})


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001  (re-raised unless it is the user's input)
        if not is_user_error(exc):
            raise
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
