#!/usr/bin/env python
"""Accuracy of a model folder on held-out conversation JSONL (same as `vlmtune eval`).

    python tools/eval.py MODEL DATA [--images DIR] [--out results.jsonl] [--limit N]
"""
import sys

from vlmtune.cli import main

if __name__ == '__main__':
    sys.exit(main(['eval', *sys.argv[1:]]))
