"""Answer readers, by name: how a model's output text becomes a benchmark's answer. Each reader module reads
multiple choice (`choice`), yes/no (`yes_no`) and scores short answers, returning the rule that read each output."""
from . import official, vlmevalkit

READERS = {reader.NAME: reader for reader in (official, vlmevalkit)}


def reader_named(name: str):
    if name not in READERS:
        raise ValueError(f'unknown reader {name!r}; choose one of {sorted(READERS)}')
    return READERS[name]
