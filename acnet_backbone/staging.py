"""Staged writes, for every tool and study of the package: a file appears
complete under its name or not at all (a temporary file in the same folder,
then ``os.replace``: :func:`write_text`, :func:`write_json`,
:func:`save_figure`), and a tool that writes several files as one output
writes them all at once or not at all (:func:`check_out_dir` before any
work, then :func:`staged_outputs`): a failed or interrupted run leaves the
folder as it was, and a folder the run created is removed again.
"""
import contextlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Iterator, Sequence

from .errors import FuseError


def _staged(path: str, suffix: str, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(osp.abspath(path)),
                               suffix=suffix)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the staging only
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _staged(path, '.tmp', lambda f: f.write(text.encode('utf-8')))


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2))


def save_figure(fig, path: str, dpi: int = 110, **kwargs) -> None:
    """Save a matplotlib figure to ``path`` atomically and close it;
    ``kwargs`` go to ``fig.savefig`` (e.g. ``bbox_inches='tight'``)."""
    import matplotlib.pyplot as plt
    ext = osp.splitext(path)[1] or '.png'
    try:
        _staged(path, ext,
                lambda f: fig.savefig(f, dpi=dpi, format=ext.lstrip('.'),
                                      **kwargs))
    finally:
        plt.close(fig)


def save_torch(path: str, obj) -> None:
    """``torch.save`` ``obj`` (plain tensors and Python types, loadable with
    ``weights_only=True``) to ``path`` atomically."""
    import torch
    _staged(path, '.pth', lambda f: torch.save(obj, f))


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
                            'pass `force` to overwrite')
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
