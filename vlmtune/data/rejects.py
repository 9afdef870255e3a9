"""What the data path says when a sample cannot be trained, and the label value that masks a token."""
IGNORE_INDEX = -100

# Stable kinds `data check --model` reports (the encoder's rejects; others count as length_error).
TOO_LONG = 'too_long'
LABELS_MASKED = 'labels_masked'          # a template's rule masked every label (LLaVA's mismatch rule)
NO_TRAINED_TOKENS = 'no_trained_tokens'  # nothing to train without any template warning


class SampleRejected(ValueError):
    """The sample cannot be trained on; the message says why and what to change; `kind` is a stable key
    (None: unclassified)."""

    def __init__(self, message: str, kind: str = None):
        super().__init__(message)
        self.kind = kind
