"""The one error type of the deploy tools."""


class FuseError(RuntimeError):
    """A problem with the user's input (or a failed verification): reported
    in one line, nothing written."""
