"""What mmdeploy 1.3.1 needs to export on torch >= 2.9, in one place.

mmdeploy 1.3.1 was written for torch 1.x/2.0 and its ONNX path meets two
changes of later torch releases:

1. ``torch.onnx.export`` defaults to the dynamo exporter since torch 2.9.
   mmdeploy calls it with TorchScript-exporter arguments (``dynamic_axes``,
   ``input_metas`` bound through ``functools.partial``, symbolic rewrites
   registered for the TorchScript graph): the dynamo exporter stops with
   "Detected mismatch between the structure of `inputs` and
   `dynamic_shapes`", and mmdeploy's rewriter then fails on exit with
   ``KeyError: -1``. Fix: while exporting, a call that does not choose an
   exporter gets ``dynamo=False`` (the TorchScript exporter, still shipped);
   a torch whose exporter has no ``dynamo`` argument gets nothing added.
2. mmdeploy's RoIAlign symbolic (two-stage detectors) imports
   ``_cast_Long`` from ``torch.onnx.symbolic_opset9``, which newer torch
   removed (``ImportError``). Fix: while exporting, a stand-in that emits the
   ONNX ``Cast`` to int64 the removed helper emitted.

Both are applied only inside :func:`mmdeploy_export_compat` and undone on
exit, so nothing else in the process sees a changed ``torch.onnx``.
"""
import contextlib
import functools
import inspect
from typing import Dict, Iterator

import torch

# onnx.TensorProto.INT64: the element type the removed helper cast to
_ONNX_INT64 = 7


def _cast_long(g, input, non_blocking=False):
    """Stand-in for torch's removed ``symbolic_opset9._cast_Long``."""
    return g.op('Cast', input, to_i=_ONNX_INT64)


def torchscript_export_kwargs(export=None) -> Dict[str, bool]:
    """``{'dynamo': False}`` when ``export`` (default ``torch.onnx.export``)
    has that argument, else ``{}``: older torch has only the TorchScript
    exporter and refuses the keyword."""
    export = export or torch.onnx.export
    try:
        params = inspect.signature(export).parameters
    except (TypeError, ValueError):
        return {}
    return {'dynamo': False} if 'dynamo' in params else {}


@contextlib.contextmanager
def mmdeploy_export_compat() -> Iterator[None]:
    """Make mmdeploy 1.3.1's ONNX export work on this torch, for the
    duration of the ``with`` block (see the module docstring)."""
    import torch.onnx.symbolic_opset9 as opset9
    original_export = torch.onnx.export

    choose = torchscript_export_kwargs(original_export)

    @functools.wraps(original_export)
    def export(*args, **kwargs):
        for key, value in choose.items():
            kwargs.setdefault(key, value)
        return original_export(*args, **kwargs)

    added_cast = not hasattr(opset9, '_cast_Long')
    torch.onnx.export = export
    if added_cast:
        opset9._cast_Long = _cast_long
    try:
        yield
    finally:
        torch.onnx.export = original_export
        if added_cast:
            del opset9._cast_Long


def ort_custom_ops_library():
    """Path of mmdeploy's onnxruntime op library (``MMCVRoiAlign`` and other
    ops of two-stage detectors), or None where mmdeploy does not ship one."""
    try:
        from mmdeploy.backend.onnxruntime.init_plugins import \
            get_ops_path
    except ImportError:
        return None
    path = get_ops_path()
    return path or None
