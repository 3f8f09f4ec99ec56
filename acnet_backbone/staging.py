"""Staged writes of single files, for every tool and study of the package:
a file appears complete under its name or not at all (a temporary file in
the same folder, then ``os.replace``). A tool that writes several files as
one output uses :mod:`acnet_backbone.deploy.staging` instead."""
import json
import os
import os.path as osp
import tempfile


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
