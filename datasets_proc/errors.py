"""The two ways a conversion can fail: one bad row, or a bad input file."""


class ConversionError(Exception):
    """One source record cannot be converted; the row is rejected, the run goes on.

    ``reason`` is a short, stable category (it is the key of the report's counts);
    ``detail`` carries the specifics for the rejects file.
    """

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InputError(Exception):
    """The input as a whole is unusable (unreadable, bad JSON, missing column).

    The message names the file (and row where known); the CLI prints it and exits 2.
    """
