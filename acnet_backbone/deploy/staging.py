"""Writing a tool's outputs all at once or not at all.

Every deploy tool checks its output folder before any work
(:func:`check_out_dir`), writes its files into a hidden staging folder inside
it and renames them into place only when everything succeeded
(:func:`staged_outputs`): a failed or interrupted run leaves the folder as it
was, and a folder the run created is removed again.
"""
import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Sequence

from .errors import FuseError


def check_out_dir(out_dir: str, names: Sequence[str], force: bool) -> None:
    """Refuse early (before any work) an output folder that cannot be written
    or that holds outputs already; creates nothing.

    Args:
        out_dir (str): the output folder (may not exist yet).
        names (Sequence[str]): the file names the run will write there.
        force (bool): allow overwriting existing outputs.

    Raises:
        FuseError: the folder is a file, is not writable, cannot be created
            (e.g. a path below a regular file) or holds one of ``names``
            and ``force`` is False.
    """
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise FuseError(f'output folder {out_dir} is a file')
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise FuseError(f'output folder {out_dir} is not writable')
        existing = [n for n in names
                    if os.path.exists(os.path.join(out_dir, n))]
        if existing and not force:
            raise FuseError(f'{os.path.join(out_dir, existing[0])} exists; '
                            'pass --force to overwrite')
        return
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise FuseError(f'output folder {out_dir} cannot be created: {parent} '
                        'is not a writable folder')


@contextlib.contextmanager
def staged_outputs(out_dir: str, names: Sequence[str]) -> Iterator[str]:
    """Stage the files ``names`` in a temporary folder inside ``out_dir`` and
    rename them into ``out_dir`` when the ``with`` block succeeds.

    Example:
        >>> with staged_outputs('out', ['a.txt']) as tmp:
        ...     open(os.path.join(tmp, 'a.txt'), 'w').write('done')

    On an exception nothing is renamed, the staging folder is removed and so
    is ``out_dir`` when this call created it and it is still empty.

    Args:
        out_dir (str): the final folder (created when missing).
        names (Sequence[str]): files the block must write into the staging
            folder; other files written there are discarded.

    Yields:
        str: the staging folder.

    Raises:
        FuseError: ``out_dir`` cannot be created or written.
    """
    created = not os.path.exists(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=out_dir, prefix='.staging-')
    except OSError as err:
        if created and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise FuseError(f'output folder {out_dir} is not writable '
                        f'({err.strerror})') from None
    done = False
    try:
        yield tmp
        missing = [n for n in names
                   if not os.path.isfile(os.path.join(tmp, n))]
        if missing:
            raise RuntimeError(f'{missing[0]} was not written')
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not done and os.path.isdir(out_dir) and not \
                os.listdir(out_dir):
            os.rmdir(out_dir)  # leave no trace of a failed run
