"""The CLI answers listing, copying and --help without the training stack, and every --help shows each
option's default (start-up times: benchmarks/bench_cli.py)."""
import argparse
import subprocess
import sys

import pytest

from helpers.probes import REPO
from vlmtune.cli import build_parser

LIGHT = [['list-cfg'], ['copy-cfg', 'lora_cpu', '{tmp}/copy.py'], ['--help'], ['train', '--help'], ['chat', '--help'],
         ['data', 'convert', 'foodieqa', '--help']]


@pytest.mark.parametrize('argv', LIGHT, ids=lambda argv: ' '.join(a for a in argv if '{' not in a))
def test_light_commands_import_neither_torch_nor_the_trainer(argv, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = ('import sys\nfrom vlmtune.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n'
            'heavy = sorted(m for m in ("torch", "transformers", "mmengine", "deepspeed", "xtuner") if m in sys.modules)\n'
            'print("HEAVY", heavy)' % argv)
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == 'HEAVY []', out.stdout[-500:]


def subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f'{name} {n}', s) for n, s in subparsers(sub))


@pytest.mark.parametrize('name,parser', list(subparsers(build_parser())), ids=lambda v: v if isinstance(v, str) else '')
def test_every_help_shows_the_defaults(name, parser):
    text = ' '.join(parser.format_help().split())
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help != argparse.SUPPRESS:
            shown = f'default: {action.default}' in text or ('default' in (action.help or '').lower())
            assert shown, (name, action.option_strings, action.default)
