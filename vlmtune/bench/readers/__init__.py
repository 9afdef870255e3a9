"""Answer readers, by name: how a model's output text becomes a benchmark's answer. Each reader module reads
multiple choice (`choice`), yes/no (`yes_no`) and scores short answers, returning the rule that read each output."""
from . import vlmevalkit

READERS = {vlmevalkit.NAME: vlmevalkit}
