"""The tested dependency stacks, and the check ``import acnet_backbone`` runs.

Two stacks are tested (``make test`` and ``make test-torch21``):

=============  ===============  ==============
package        primary          older
=============  ===============  ==============
python         3.11             3.11
torch          2.14.1           2.1.2
torchvision    0.29.1           0.16.2
numpy          2.x              1.26
mmengine       0.10.7           0.10.7
mmcv           2.1.0            2.1.0
mmdet          3.3.0            3.3.0
=============  ===============  ==============

At import, :func:`check_stack` reads the installed versions from the
distributions' metadata (it imports nothing) and

* raises :class:`IncompatibleStackError` (an ``ImportError``) with one line
  where the stack cannot work (numpy 2 under a torch built against numpy 1.x;
  mmcv >= 2.2, which mmdet 3.x refuses);
* warns once, :class:`UntestedStackWarning` with one line, where a version
  lies outside the tested range but may still work.
"""
import re
import sys
import warnings
from importlib import metadata
from typing import Dict, List, Optional, Tuple

Version = Tuple[int, ...]

#: ``package: (oldest tested, newest tested)``, compared on major.minor.
TESTED_RANGES: Dict[str, Tuple[str, str]] = {
    'python': ('3.11', '3.11'),
    'torch': ('2.1', '2.14'),
    'mmengine': ('0.10', '0.10'),
    'mmcv': ('2.1', '2.1'),
    'mmdet': ('3.3', '3.3'),
}
#: The exact versions each stack was tested with.
TESTED_STACKS = {
    'primary': dict(python='3.11', torch='2.14.1', torchvision='0.29.1',
                    numpy='2.4', mmengine='0.10.7', mmcv='2.1.0',
                    mmdet='3.3.0'),
    'torch21': dict(python='3.11', torch='2.1.2', torchvision='0.16.2',
                    numpy='1.26.4', mmengine='0.10.7', mmcv='2.1.0',
                    mmdet='3.3.0'),
}


class IncompatibleStackError(ImportError):
    """The installed versions cannot run this package."""


class UntestedStackWarning(UserWarning):
    """An installed version lies outside the tested range."""


def parse_version(text: str) -> Optional[Version]:
    """``'2.1.2+cu121'`` -> ``(2, 1, 2)``; ``None`` if it has no number."""
    match = re.match(r'(\d+)(?:\.(\d+))?(?:\.(\d+))?', text or '')
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def installed_versions() -> Dict[str, str]:
    """The installed versions of the packages the check looks at (read from
    their metadata; a missing one is left out)."""
    found = {'python': '.'.join(map(str, sys.version_info[:3]))}
    for name in ('torch', 'numpy', 'mmengine', 'mmcv', 'mmdet'):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def check_stack(versions: Dict[str, str]) -> Tuple[Optional[str], str]:
    """Judge a stack.

    Args:
        versions (dict): ``{package: version string}``, e.g. from
            :func:`installed_versions`.

    Returns:
        tuple: ``(level, line)``: level ``'error'`` (it cannot work),
        ``'warning'`` (outside the tested range, may work) or ``None``, and a
        one-line explanation naming the versions found and the tested range.
    """
    v = {k: parse_version(s) for k, s in versions.items()}
    tested = ', '.join(f'{k} {lo}' if lo == hi else f'{k} {lo}-{hi}'
                       for k, (lo, hi) in TESTED_RANGES.items())
    errors: List[str] = []
    torch_v, numpy_v, mmcv_v = v.get('torch'), v.get('numpy'), v.get('mmcv')
    if torch_v and numpy_v and torch_v[:2] < (2, 3) and numpy_v[0] >= 2:
        errors.append(f'numpy {versions["numpy"]} with torch '
                      f'{versions["torch"]} (torch < 2.3 is built against '
                      'numpy 1.x: install "numpy<2")')
    if mmcv_v and mmcv_v[:2] >= (2, 2):
        errors.append(f'mmcv {versions["mmcv"]} (mmdet 3.x needs mmcv < '
                      '2.2.0)')
    if errors:
        return 'error', ('acnet_backbone cannot run on ' + '; '.join(errors) +
                         f'. Tested: {tested}.')
    outside = []
    for name, (lo, hi) in TESTED_RANGES.items():
        found = v.get(name)
        if found is None:
            continue
        if found[:2] < parse_version(lo)[:2] or \
                found[:2] > parse_version(hi)[:2]:
            outside.append(f'{name} {versions[name]}')
    if outside:
        return 'warning', ('acnet_backbone is untested with ' +
                           ', '.join(outside) + f' (tested: {tested}); it '
                           'may still work.')
    return None, ''


def check_installed_stack() -> None:
    """Run :func:`check_stack` on the installed versions: raise or warn."""
    level, line = check_stack(installed_versions())
    if level == 'error':
        raise IncompatibleStackError(line)
    if level == 'warning':
        warnings.warn(line, UntestedStackWarning, stacklevel=3)


def _has_add_safe_globals() -> bool:
    import torch
    return hasattr(torch.serialization, 'add_safe_globals')


def _has_weights_only_default() -> bool:
    import inspect

    import torch
    param = inspect.signature(torch.load).parameters.get('weights_only')
    return param is not None and param.default is not False


def _has_onnx_dynamo() -> bool:
    import inspect

    import torch.onnx
    return 'dynamo' in inspect.signature(torch.onnx.export).parameters


#: ``name: (probe, what it is)``: torch features some tests need.
TORCH_FEATURES = {
    'add_safe_globals': (_has_add_safe_globals,
                         'torch.serialization.add_safe_globals (torch >= '
                         '2.4)'),
    'weights_only_default': (_has_weights_only_default,
                             'torch.load defaulting to weights_only=True '
                             '(torch >= 2.6)'),
    'onnx_dynamo': (_has_onnx_dynamo,
                    "torch.onnx.export's dynamo exporter (torch >= 2.5)"),
}


def missing_torch_feature(name: str) -> Optional[str]:
    """``None`` when the installed torch has feature ``name`` (a key of
    :data:`TORCH_FEATURES`), else a one-line reason naming it."""
    probe, what = TORCH_FEATURES[name]
    if probe():
        return None
    import torch
    return f'needs {what}; torch {torch.__version__} lacks it'


def register_load_state_dict_pre_hook(module, hook):
    """``module.register_load_state_dict_pre_hook(hook)`` on every torch.

    The public method is newer than torch 2.1, which has the same hook as
    ``_register_load_state_dict_pre_hook(hook, with_module=True)``: ``hook``
    is called as ``hook(module, state_dict, prefix, local_metadata, strict,
    missing_keys, unexpected_keys, error_msgs)`` either way.

    Returns:
        The handle whose ``remove()`` unregisters the hook.
    """
    public = getattr(module, 'register_load_state_dict_pre_hook', None)
    if public is not None:
        return public(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)
