"""Training data: loading, tiling and validation of canonical JSONL rows."""
