"""Multi-turn chat with a model folder in the terminal: `vlmtune chat MODEL` or `tools/chat.py MODEL`;
`vlmtune chat --api URL` talks to an OpenAI-compatible server (`vlmtune serve`) instead.

Lines typed at `>>> ` are questions; answers stream to stdout after `assistant: `. Commands:
`/image PATH` attaches an image to the next question, `/reset` starts a new session, `/exit` (or
Ctrl-D) leaves. Reads with `input()`, so it has line editing on a TTY and also works on piped stdin.
"""
import argparse
import os
import sys

from ..cli_help import DefaultsHelpFormatter

COMMANDS = '/image PATH (attach to the next question), /reset (new session), /exit or Ctrl-D (leave)'


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument('model', nargs='?', help='checkpoint folder (any supported layout); not with --api')
    parser.add_argument('--api', metavar='URL', help='an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1')
    parser.add_argument('--image', help='image attached to the first question')
    parser.add_argument('--backend', default='auto', choices=['auto', 'turbomind', 'pytorch', 'torch'],
                        help='auto: LMDeploy when a GPU and lmdeploy are present, else torch')
    parser.add_argument('--max-new-tokens', type=int, default=512)
    parser.add_argument('--temperature', type=float, default=0.0, help='0 means greedy')
    parser.add_argument('--max-tiles', type=int, default=None, help='tiles per image (torch backend)')
    bits = parser.add_mutually_exclusive_group()
    bits.add_argument('--load-4bit', dest='load_bits', action='store_const', const=4,
                      help='LLM in 4-bit NF4 (bitsandbytes, GPU, torch backend)')
    bits.add_argument('--load-8bit', dest='load_bits', action='store_const', const=8,
                      help='LLM in 8-bit LLM.int8() (bitsandbytes, GPU, torch backend)')
    return parser


def _error(message) -> None:
    print(f'error: {message}', file=sys.stderr, flush=True)


def _load(args):
    from ..formats import CheckpointError
    from .pipeline import pipeline, resolve_backend
    if args.api:
        from .api_client import ApiPipeline
        try:
            return ApiPipeline(args.api, model=args.model)
        except Exception as exc:  # the openai client's connection / HTTP errors
            _error(f'{args.api}: {exc}')
            return None
    if not args.model:
        _error('give a checkpoint folder, or --api URL')
        return None
    try:
        backend = 'torch' if args.load_bits else resolve_backend(args.model, args.backend)
        kwargs = {'load_bits': args.load_bits} if args.load_bits else {}
        if args.max_tiles is not None:
            if backend == 'torch':
                kwargs['max_tiles'] = args.max_tiles
            else:
                _error(f'--max-tiles is ignored by the {backend} backend')
        return pipeline(args.model, backend=backend, **kwargs)
    except (CheckpointError, FileNotFoundError, RuntimeError, ValueError) as exc:
        _error(exc)
        return None


def run(args) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    from .pipeline import GenerationConfig, Session, open_image
    try:
        pending = [open_image(args.image)] if args.image else []
    except ValueError as exc:
        _error(exc)
        return 2
    pipe = _load(args)
    if pipe is None:
        return 2
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    session = Session()
    where = f'{pipe.model} at {args.api}' if args.api else args.model
    print(f'vlmtune chat | model: {where} | backend: {pipe.backend}\ncommands: {COMMANDS}', flush=True)
    try:
        while True:
            try:
                line = input('>>> ').strip()
            except EOFError:
                print()
                return 0
            if not line:
                continue
            command, _, rest = line.partition(' ')
            if command == '/exit':
                return 0
            if command == '/reset':
                session.reset()
                print('session reset', flush=True)
            elif command == '/image':
                path = os.path.expanduser(rest.strip().strip('\'"'))
                if not path:
                    _error('usage: /image PATH')
                    continue
                try:
                    pending.append(open_image(path))
                except ValueError as exc:
                    _error(exc)
                    continue
                print(f'image attached to the next question: {path}', flush=True)
            elif command.startswith('/'):
                _error(f'unknown command {command}; commands: {COMMANDS}')
            else:
                print('assistant: ', end='', flush=True)
                try:
                    for piece in pipe.chat((line, pending) if pending else line, session=session,
                                           gen_config=gen, stream=True):
                        print(piece, end='', flush=True)
                except ValueError as exc:
                    print(flush=True)
                    _error(exc)
                    continue
                print(flush=True)
                pending = []
    except KeyboardInterrupt:
        print(flush=True)
        return 130


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=DefaultsHelpFormatter)
    return run(add_arguments(parser).parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
