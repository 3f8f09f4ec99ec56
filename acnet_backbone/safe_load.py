"""Load mmengine checkpoints without running any code a pickle asks for.

mmengine 0.10.7 checkpoints carry numpy scalars/arrays/dtypes and
``HistoryBuffer`` objects in their ``meta`` and ``message_hub``, which torch's
``weights_only=True`` loader refuses by default. Rather than loading with the
unrestricted pickle (which runs any pickled code of any downloaded file), this
module allow-lists exactly those types, in one of two ways:

* torch >= 2.4 has :func:`torch.serialization.add_safe_globals`: the
  allow-list is registered there when the package is imported, so every
  ``torch.load(..., weights_only=True)`` (the default from torch 2.6, hence
  mmengine's ``--resume`` and ``Pretrained``) reads mmengine checkpoints.
* older torch (2.1 here) has ``weights_only=True`` with a fixed allow-list and
  no way to extend it. There :func:`safe_load` hands torch a restricted
  unpickler (:class:`RestrictedUnpickler`) through ``torch.load``'s documented
  ``pickle_module`` argument: torch still rebuilds the tensors, the unpickler
  resolves only allow-listed globals (torch's own weights-only list plus the
  mmengine types below), calls and instantiates nothing else and sets state
  only on allow-listed instances. Importing the package also points mmengine's
  checkpoint loaders for local files and ``http(s)://`` / ``torchvision://``
  URLs at :func:`safe_load` (``CheckpointLoader.register_scheme``), so
  ``--resume``, ``load_from`` and ``Pretrained`` refuse pickled code there too.
  A plain ``torch.load`` call outside mmengine keeps that torch's own default.

Two pickle globals need care on both paths:

* ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``. Allow-listing the real ``getattr`` would
  let a crafted file reach any attribute of any allow-listed object (and from
  there switch ``weights_only`` off), so ``builtins.getattr`` resolves to a
  stand-in that only returns HistoryBuffer's public statistics methods.
* empty ``bytes`` objects pickle as ``builtins.bytes()``; the stand-in only
  copies bytes-like arguments (no ``bytes(10**12)``). Likewise
  ``_codecs.encode`` (how protocol 2 writes ``bytes``) only encodes latin-1.
"""
import _compat_pickle
import codecs
import os
import os.path as osp
import pickle
import types
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from .errors import InputError

_REGISTERED = False

#: ``torch.serialization.add_safe_globals`` exists (torch >= 2.4).
HAS_ADD_SAFE_GLOBALS = hasattr(torch.serialization, 'add_safe_globals')


class UnsafeCheckpointError(InputError, RuntimeError):
    """A checkpoint's pickle asked for something that is not allow-listed
    (an input error: the tools report it as one ``error:`` line)."""


class RefusedPickleError(pickle.UnpicklingError):
    """Raised by :class:`RestrictedUnpickler` before anything refused runs."""


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


def _latin1_encode(obj, encoding='utf-8', errors='strict'):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``."""
    if isinstance(obj, str) and isinstance(encoding, str) and \
            codecs.lookup(encoding).name == 'iso8859-1' and errors == 'strict':
        return codecs.encode(obj, 'latin1')
    raise UnsafeCheckpointError(
        f'refused _codecs.encode(..., {encoding!r}) in a checkpoint: only '
        'latin-1 (how pickle writes bytes) is allowed')


def _multiarray():
    """numpy's ``multiarray`` (``numpy._core`` in numpy 2, ``numpy.core`` in
    numpy 1.x; numpy 1.26 has both names)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    return multiarray


def mmengine_safe_globals() -> list:
    """The allow-list: objects, or ``(object, pickled name)`` pairs, for
    :func:`torch.serialization.add_safe_globals`."""
    from mmengine.logging import HistoryBuffer
    multiarray = _multiarray()
    entries = [
        np.ndarray,
        np.dtype,
        # files written under numpy 2.x and 1.x name the same functions here
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
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


def _torch_weights_only_globals() -> Dict[str, Any]:
    """torch's own weights-only allow-list (tensors, storages, dtypes,
    ``torch.Size``, ``OrderedDict``, the ``torch._utils._rebuild_*``
    functions), as ``{pickled name: object}``."""
    from torch import _weights_only_unpickler
    return dict(_weights_only_unpickler._get_allowed_globals())


def restricted_globals() -> Dict[str, Any]:
    """Everything :class:`RestrictedUnpickler` resolves, by pickled name."""
    allowed = _torch_weights_only_globals()
    # what newer torch lists too (torch 2.1's list lacks them): protocol-2
    # pickles write sets and complex numbers as calls, and every dtype object
    # (torch.bool, torch.uint8, torch.bfloat16, ...) by name
    allowed.update({'builtins.set': set, 'builtins.frozenset': frozenset,
                    'builtins.complex': complex, 'torch.device': torch.device})
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f'torch.{name}'] = getattr(torch, name)
    for entry in mmengine_safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    allowed['_codecs.encode'] = _latin1_encode
    return allowed


class RestrictedUnpickler(pickle._Unpickler):
    """A pickle reader that only rebuilds allow-listed objects.

    Based on the standard library's pure-Python unpickler, as torch's own
    ``weights_only`` unpickler is, with every opcode that can reach code
    guarded:

    * globals resolve through :func:`restricted_globals` only (nothing is
      imported);
    * ``REDUCE`` calls and ``NEWOBJ`` instantiates only allow-listed objects;
    * ``BUILD`` sets state only on instances of allow-listed classes (never on
      a class, function or module);
    * ``APPEND(S)`` / ``SETITEM(S)`` / ``ADDITEMS`` only touch lists, dicts and
      sets; persistent ids must be torch storages;
    * protocol 0/1 instantiation (``INST``, ``OBJ``) and the copyreg extension
      registry (``EXT*``) are refused: ``torch.save`` never writes them.

    A refusal raises :class:`RefusedPickleError` before the refused object is
    called. Used through :data:`restricted_pickle_module`.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    _allowed: Optional[Dict[str, Any]] = None
    _callables: Optional[set] = None

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        if RestrictedUnpickler._allowed is None:
            allowed = restricted_globals()
            RestrictedUnpickler._callables = {id(v) for v in allowed.values()}
            RestrictedUnpickler._allowed = allowed

    def _refuse(self, what: str):
        raise RefusedPickleError(f'{what} is not allow-listed')

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        full = f'{module}.{name}'
        if full not in self._allowed:
            self._refuse(f'global {full}')
        return self._allowed[full]

    def _check_callable(self, obj, what):
        if id(obj) not in self._callables:
            self._refuse(f'{what} of {getattr(obj, "__name__", type(obj))!r}')

    def load_reduce(self):
        self._check_callable(self.stack[-2], 'call')
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        self._check_callable(self.stack[-2], 'instantiation')
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        self._check_callable(self.stack[-3], 'instantiation')
        super().load_newobj_ex()

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_build(self):
        inst = self.stack[-2]
        if isinstance(inst, (type, types.ModuleType, types.FunctionType,
                             types.BuiltinFunctionType)) or \
                id(type(inst)) not in self._callables:
            self._refuse(f'setting the state of {type(inst).__name__!r}')
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def _guard_target(opcode: bytes, depth: Optional[int], kind: type):
        """``opcode``'s loader, run only when the object it adds items to
        (``stack[-depth]``, or the one below the last MARK for ``None``) is
        a ``kind``: pickle would call the ``append`` / ``extend`` /
        ``__setitem__`` / ``add`` of anything else."""
        base = pickle._Unpickler.dispatch[opcode[0]]

        def load(self):
            target = self.metastack[-1][-1] if depth is None \
                else self.stack[-depth]
            if not isinstance(target, kind):
                self._refuse(f'adding items to {type(target).__name__!r}')
            base(self)

        return load

    for _op, _depth, _kind in ((pickle.APPEND, 2, list),
                               (pickle.APPENDS, None, list),
                               (pickle.SETITEM, 3, dict),
                               (pickle.SETITEMS, None, dict),
                               (pickle.ADDITEMS, None, set)):
        dispatch[_op[0]] = _guard_target(_op, _depth, _kind)
    del _op, _depth, _kind, _guard_target

    def load_binpersid(self):
        pid = self.stack[-1]
        kind = pid[0] if isinstance(pid, tuple) and pid else None
        if isinstance(kind, bytes):
            kind = kind.decode('ascii', 'replace')
        if kind != 'storage':
            self._refuse(f'persistent id {kind!r}')
        super().load_binpersid()

    dispatch[pickle.BINPERSID[0]] = load_binpersid

    def _refused_opcode(self):
        self._refuse('this pickle opcode')

    for _op in (pickle.PERSID, pickle.INST, pickle.OBJ, pickle.EXT1,
                pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refused_opcode
    del _op


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` uses of a pickle module."""
    __name__ = 'acnet_backbone.safe_load.restricted_pickle_module'
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


#: The ``pickle_module`` :func:`safe_load` passes to ``torch.load`` on a torch
#: without ``add_safe_globals``.
restricted_pickle_module = _RestrictedPickleModule()


def register_safe_globals() -> None:
    """Make mmengine checkpoints load safely (idempotent; at import).

    torch >= 2.4: allow-lists the types mmengine writes in torch's
    weights-only loader. Every torch: points mmengine's local-file and
    ``http(s)://`` / ``torchvision://`` checkpoint loaders at
    :func:`safe_load`, so ``load_from``, ``--resume`` and ``Pretrained``
    load with ``weights_only=True`` (mmengine's own loader leaves it to
    torch's default, which is False before torch 2.6) and a refused pickle
    is an :class:`UnsafeCheckpointError` (one line in the tools).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    if HAS_ADD_SAFE_GLOBALS:
        torch.serialization.add_safe_globals(mmengine_safe_globals())
    _register_mmengine_loaders()
    _REGISTERED = True


def restricted_torch_load(path, map_location=None):
    """``torch.load`` through :class:`RestrictedUnpickler` (any torch)."""
    return torch.load(path, map_location=map_location,
                      pickle_module=restricted_pickle_module,
                      weights_only=False)


def safe_load(path, map_location='cpu'):
    """Load a checkpoint without running code from its pickle.

    ``torch.load(weights_only=True)`` with the allow-list above on torch >=
    2.4, :func:`restricted_torch_load` on older torch.

    Raises:
        UnsafeCheckpointError: the pickle calls something not allow-listed
            (nothing of it has run).
    """
    register_safe_globals()
    try:
        if HAS_ADD_SAFE_GLOBALS:
            return torch.load(path, map_location=map_location,
                              weights_only=True)
        return restricted_torch_load(path, map_location=map_location)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # torch wraps the unpickler's refusals
        if isinstance(err, pickle.UnpicklingError) or isinstance(
                err.__cause__, UnsafeCheckpointError):
            first = str(err).strip().splitlines()[0] if str(err) else ''
            raise UnsafeCheckpointError(
                f'{path}: refused to load, its pickle needs something that is '
                f'not allow-listed ({first})') from None
        raise


def load_from_local_safely(filename: str, map_location=None):
    """mmengine's local-file checkpoint loader, through :func:`safe_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location=map_location)


def load_from_http_safely(filename: str, map_location=None,
                            model_dir: Optional[str] = None,
                            progress: bool = False):
    """mmengine's ``http(s)://`` loader (download into torch hub's
    ``checkpoints`` folder once, local rank 0 first), through
    :func:`safe_load`."""
    from urllib.parse import urlparse

    from mmengine.dist import get_dist_info

    def fetch():
        folder = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
        os.makedirs(folder, exist_ok=True)
        cached = osp.join(folder, osp.basename(urlparse(filename).path))
        if not osp.exists(cached):
            torch.hub.download_url_to_file(filename, cached, progress=progress)
        return safe_load(cached, map_location=map_location)

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = fetch()
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = fetch()
    return checkpoint


def load_from_torchvision_safely(filename: str, map_location=None):
    """mmengine's ``torchvision://`` / ``modelzoo://`` loader, through
    `load_from_http_safely`."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    return load_from_http_safely(
        get_torchvision_models()[name], map_location=map_location)


def _register_mmengine_loaders() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    loaders: Dict[Any, Callable] = {
        '': load_from_local_safely,
        ('http://', 'https://'): load_from_http_safely,
        ('modelzoo://', 'torchvision://'): load_from_torchvision_safely,
    }
    for prefixes, loader in loaders.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
