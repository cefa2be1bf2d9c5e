"""The one exception type users see: its message names the file or config key and says what to do."""


class EpeflowError(Exception):
    """An error caused by input or configuration, reported by the CLI without a traceback."""
