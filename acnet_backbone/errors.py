"""Errors that come from the user's input (a config, a checkpoint, a data
file) rather than from a bug, and their one-line form for the tools."""


class InputError(ValueError):
    """A problem with the user's input, reported by the tools as one
    ``error:`` line with exit status 2 instead of a traceback."""


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
