"""The package's one error hierarchy and the one-line form of its messages.

Every error that comes from the user's input (a config, a checkpoint, a data
file, an option) or from a failed check, rather than from a bug, derives
from :class:`AcnetError`; the tools print it as one ``error:`` line and exit
with status 2 (:data:`EXIT_BAD_INPUT`). Messages name the function's
arguments; a tool maps them to its flags (:func:`flag_message`).
"""
from typing import Dict

EXIT_BAD_INPUT = 2


class AcnetError(Exception):
    """Base of every error of the package that a tool reports as one
    ``error:`` line with exit status 2 instead of a traceback."""


class InputError(AcnetError, ValueError):
    """A problem with the user's input (a config, a checkpoint, a file)."""


class FuseError(InputError, RuntimeError):
    """A deployment that cannot be done (bad input, or a fused / exported
    model that fails its check): reported in one line, nothing written."""


def flag_message(err: BaseException, flags: Dict[str, str]) -> str:
    """The one-line message of ``err`` with the package's argument names
    replaced by a tool's flags (``{'num_images': '--num-images'}``): package
    messages write an argument as ``` `name` ```."""
    text = one_line(err)
    for arg, flag in flags.items():
        text = text.replace(f'`{arg}`', flag)
    return text


def one_line(err: BaseException) -> str:
    """The message of ``err`` as one line.

    An exception raised inside a ``DataLoader`` worker process reaches the
    main process re-raised by torch with the worker's whole traceback as
    its message (``Caught X in DataLoader worker process 0. Original
    Traceback ...`` whose last line is ``module.X: message``); the original
    message is that last line without its ``module.X:`` prefix.
    """
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith('Caught '):
        last = lines[-1]
        name = type(err).__name__
        head, sep, rest = last.partition(': ')
        if sep and head.rsplit('.', 1)[-1] == name:
            return rest.strip()
        return last.strip()
    return ' '.join(line.strip() for line in lines)
