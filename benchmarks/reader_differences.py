"""Where the two answer readers part: the adversarial outputs of the reader oracles (tests/helpers/adversarial_outputs.py)
read by `--reader official` and `--reader vlmevalkit`, per benchmark: how many read alike, and examples where not.

    python benchmarks/reader_differences.py [--examples 4]
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / 'tests')]

from helpers.adversarial_outputs import cases  # noqa: E402
from vlmtune.bench.readers import official, vlmevalkit  # noqa: E402


def readings():
    """benchmark -> [(output shown, official reading, vlmevalkit reading)]."""
    c = cases()
    choice = [(f'{o!r} of {"".join(opts)}', official.choice(o, opts)[0], vlmevalkit.choice(o, opts)[0])
              for o, opts in c['choice']]
    out = {'MMBench / SEED / ScienceQA (choice)': choice}
    for bench in ('mme', 'pope'):
        out[bench.upper()] = [(repr(o), official.yes_no(o, bench)[0], vlmevalkit.yes_no(o, bench)[0]) for o in c['yes_no']]
    for bench in ('vqav2', 'textvqa'):
        out[bench] = [(f'{o!r} vs {a[:2]}...', official.short_answer(o, a, bench)['score'],
                       vlmevalkit.short_answer(o, a, bench)['score']) for o, a in c['vqa']]
    out['gqa'] = [(f'{o!r} vs {a}', official.short_answer(o, a, 'gqa')['score'],
                   vlmevalkit.short_answer(o, a, 'gqa')['score']) for o, a in c['gqa']]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--examples', type=int, default=4)
    args = parser.parse_args()
    print('| benchmark | outputs | read alike | differ | examples (official vs vlmevalkit) |\n|---|---|---|---|---|')
    for bench, rows in readings().items():
        differ = [(shown, a, b) for shown, a, b in rows if a != b]
        spread = differ[::max(1, len(differ) // args.examples)][:args.examples]  # examples from across the set
        examples = '; '.join(f'{shown}: {a} vs {b}' for shown, a, b in spread)
        print(f'| {bench} | {len(rows)} | {len(rows) - len(differ)} | {len(differ)} | {examples} |')


if __name__ == '__main__':
    main()
