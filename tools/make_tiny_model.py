#!/usr/bin/env python
"""Build a tiny random InternVL model (ViT flavour x LLM family x template) as a checkpoint folder
in any layout, or as parts (an InternViT folder + an LLM folder, for building from parts).

    python tools/make_tiny_model.py OUT --llm internlm2 --vit 6b --image-size 56 [--layout internvl_hf]
    python tools/make_tiny_model.py OUT --parts        # OUT/vision_tower + OUT/llm
    python tools/make_tiny_model.py OUT --llava clip|siglip [--next]   # a tiny llava-hf / llava-next-hf folder
    python tools/make_tiny_model.py OUT --llava clip --parts          # OUT/vision_tower (CLIP) + OUT/llm (Llama)
"""
import argparse
import dataclasses
import inspect
import re
import sys

from vlmtune.cli_help import DefaultsHelpFormatter
from vlmtune.tiny import (TinyLlavaSpec, TinySpec, make_tiny_folder, make_tiny_llava_folder, make_tiny_llava_parts,
                          make_tiny_parts)


def field_notes(cls) -> dict:
    """{field: its comment in the dataclass's source}: the spec documents its fields once, there."""
    return dict(re.findall(r'^\s+(\w+): [^=]+=[^#\n]+#\s*(.+)$', inspect.getsource(cls), re.M))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=DefaultsHelpFormatter)
    parser.add_argument('out')
    notes = field_notes(TinySpec)
    for field in dataclasses.fields(TinySpec):
        parser.add_argument('--' + field.name.replace('_', '-'), type=type(field.default) if field.default
                            is not None else str, default=field.default, help=notes.get(field.name))
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'])
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument('--layout', default='internvl', help='internvl (default), internvl_hf or vlmtune')
    parser.add_argument('--parts', action='store_true',
                        help='write a vision-tower folder and an LLM folder instead (with --llava: CLIP/SigLIP + Llama)')
    parser.add_argument('--llava', choices=['clip', 'siglip'], help='a tiny LLaVA model (CLIP/SigLIP + Llama) instead')
    parser.add_argument('--next', action='store_true', help='with --llava: LLaVA-NeXT (anyres), llava_next_hf')
    args = parser.parse_args(argv)
    if args.llava and args.parts:
        for part, folder in make_tiny_llava_parts(args.out, spec=TinyLlavaSpec(tower=args.llava,
                                                                               image_size=args.image_size)).items():
            print(f'wrote {folder} ({part})')
        return 0
    if args.llava:
        out = make_tiny_llava_folder(args.out, TinyLlavaSpec(tower=args.llava, image_size=args.image_size), args.next)
        print(f'wrote {out}')
        return 0
    spec = TinySpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TinySpec)})
    if args.parts:
        for part, folder in make_tiny_parts(args.out, spec).items():
            print(f'wrote {folder} ({part})')
        return 0
    out = make_tiny_folder(args.out, spec, dtype=args.dtype, overwrite=args.overwrite, layout=args.layout)
    print(f'wrote {out} ({args.layout} layout)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
