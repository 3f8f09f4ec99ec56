"""What the CPU computes natively, read from ``/proc/cpuinfo`` without
loading any runtime: the choices that depend on it (OpenVINO's BF16 in
:mod:`.openvino`, the INT8 weight range in :mod:`..quantize`) read it here.
"""
import os
from typing import Dict

# CPU flags (as /proc/cpuinfo names them) that decide native support
_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16',
          'amx_tile', 'amx_bf16', 'amx_int8')


def _cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> Dict:
    """The CPU model name and the flags of :data:`_FLAGS` from ``cpuinfo``
    (all False where the file does not exist, e.g. off Linux)."""
    model, flags = None, set()
    if os.path.isfile(cpuinfo):
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and model is None:
                    model = value.strip()
                elif key == 'flags':
                    flags = set(value.split())
                    break
    return dict(model=model, flags={f: f in flags for f in _FLAGS})


def cpu_features(cpuinfo: str = '/proc/cpuinfo') -> Dict:
    """The CPU's model and native arithmetic from ``cpuinfo`` alone (no
    runtime is loaded): what :func:`.openvino.cpu_capabilities` reports
    less the OpenVINO entries. The INT8 weight range
    (:func:`~acnet_backbone.deploy.quantize.int8_weight_range`) and the
    OpenVINO precisions (:func:`.openvino.native_precisions`) follow it.

    Args:
        cpuinfo (str): the file to read the flags from. Defaults to
            ``/proc/cpuinfo``.

    Returns:
        dict: ``model``, ``cores``, ``AMX``, ``BF16``, ``VNNI``, ``AVX2``
        and ``flags``, as in :func:`.openvino.cpu_capabilities`.
    """
    info = _cpu_flags(cpuinfo)
    f = info['flags']
    return dict(
        model=info['model'], cores=os.cpu_count(),
        AMX=f['amx_tile'] or f['amx_bf16'] or f['amx_int8'],
        BF16=f['amx_bf16'] or f['avx512_bf16'],
        VNNI=f['avx512_vnni'] or f['avx_vnni'] or f['amx_int8'],
        AVX2=f['avx2'], flags=f)
