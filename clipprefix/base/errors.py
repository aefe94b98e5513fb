"""The one exception type for expected, user-facing failures.

A `ClipPrefixError` carries one sentence that says what went wrong and how to fix it. The CLI prints
it without a traceback and exits with status 2; library users can catch it like any exception.
"""


class ClipPrefixError(Exception):
    """An expected failure (bad input, missing weights, impossible option) with a one-sentence message."""
