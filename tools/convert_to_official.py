#!/usr/bin/env python
"""Merge LoRA and write an official-format InternVL folder from a training checkpoint.

    python tools/convert_to_official.py RECIPE CHECKPOINT OUT [--dtype bf16|fp32] [--no-verify] [--overwrite]

CHECKPOINT: an mmengine .pth file or a DeepSpeed ZeRO folder (work_dir/iter_N.pth/). Same as
`vlmtune convert`.
"""
import sys

from vlmtune.cli import main

if __name__ == '__main__':
    sys.exit(main(['convert', *sys.argv[1:]]))
