#!/usr/bin/env python
"""Build a tiny random official-format InternVL folder (ViT flavour x LLM family x template).

    python tools/make_tiny_model.py OUT --llm internlm2 --vit 6b --image-size 56
"""
import argparse
import dataclasses
import sys

from vlmtune.tiny import TinySpec, make_tiny_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out')
    for field in dataclasses.fields(TinySpec):
        parser.add_argument('--' + field.name.replace('_', '-'), type=type(field.default) if field.default
                            is not None else str, default=field.default)
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'])
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    spec = TinySpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TinySpec)})
    out = make_tiny_folder(args.out, spec, dtype=args.dtype, overwrite=args.overwrite)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
