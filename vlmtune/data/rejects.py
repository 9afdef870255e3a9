"""What the data path says when a sample cannot be trained, and the label value that masks a token."""
IGNORE_INDEX = -100


class SampleRejected(ValueError):
    """The sample cannot be trained on; the message says why and what to change."""
