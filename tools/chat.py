#!/usr/bin/env python
"""Chat with a model folder in the terminal (same as `vlmtune chat`).

    python tools/chat.py MODEL [--image PATH] [--backend auto|turbomind|pytorch|torch]
                               [--max-new-tokens N] [--temperature T] [--max-tiles K]
"""
import sys

from vlmtune.serve.terminal_chat import main

if __name__ == '__main__':
    sys.exit(main())
