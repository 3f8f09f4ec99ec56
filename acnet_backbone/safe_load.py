"""Let ``torch.load(..., weights_only=True)`` read mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default and mmengine 0.10.7
checkpoints carry numpy scalars/arrays/dtypes and ``HistoryBuffer`` objects in
their ``meta`` and ``message_hub``. Rather than switching ``weights_only`` off
(which would run any pickled code of any downloaded file), this module
allow-lists exactly those types. Two pickle globals need care:

* ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``. Allow-listing the real ``getattr`` would
  let a crafted file reach any attribute of any allow-listed object (and from
  there switch ``weights_only`` off), so ``builtins.getattr`` resolves to a
  stand-in that only returns HistoryBuffer's public statistics methods.
* empty ``bytes`` objects pickle as ``builtins.bytes()``; the stand-in only
  copies bytes-like arguments (no ``bytes(10**12)``).
"""
import numpy as np
import torch

_REGISTERED = False


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint's pickle asked for something that is not allow-listed."""


def _history_buffer_getattr(obj, name):
    from mmengine.logging import HistoryBuffer
    if obj is not HistoryBuffer or not isinstance(name, str) or \
            name.startswith('_'):
        raise UnsafeCheckpointError(
            f'refused getattr({getattr(obj, "__name__", type(obj).__name__)}'
            f', {name!r}) in a checkpoint: only HistoryBuffer statistics '
            'methods are allowed')
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'mean', 'current'}
    if name not in allowed:
        raise UnsafeCheckpointError(
            f'refused getattr(HistoryBuffer, {name!r}) in a checkpoint')
    return getattr(HistoryBuffer, name)


def _bytes_copy(*args):
    if not args:
        return b''
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise UnsafeCheckpointError('refused bytes(...) with non-bytes arguments '
                                'in a checkpoint')


def mmengine_safe_globals() -> list:
    """The allow-list: objects, or ``(object, pickled name)`` pairs, for
    :func:`torch.serialization.add_safe_globals`."""
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray
    entries = [
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        # files written under numpy 1.x name the same functions here
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_bytes_copy, 'builtins.bytes'),
    ]
    # numpy 2 pickles each dtype through its concrete class
    # (numpy.dtypes.Float64DType, ...), which torch does not list on its own.
    for name in dir(np.dtypes):
        obj = getattr(np.dtypes, name)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            entries.append(obj)
    return entries


def register_safe_globals() -> None:
    """Allow-list the types mmengine writes into checkpoints (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    _REGISTERED = True


def safe_load(path, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and the allow-list above.

    Raises:
        UnsafeCheckpointError: the pickle calls something not allow-listed
            (nothing of it has run).
    """
    register_safe_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # torch wraps the unpickler's refusals
        if type(err).__name__ == 'UnpicklingError' or isinstance(
                err.__cause__, UnsafeCheckpointError):
            first = str(err).strip().splitlines()[0] if str(err) else ''
            raise UnsafeCheckpointError(
                f'{path}: refused to load, its pickle needs something that is '
                f'not allow-listed ({first})') from None
        raise

