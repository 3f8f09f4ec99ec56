"""OpenVINO runs of the end-to-end files (``end2end.onnx``,
``end2end_int8.onnx``) on the CPU, with an explicit precision.

OpenVINO reads the end-to-end ONNX as it is (decoding and NMS included), so
the deployed file needs no conversion; :func:`save_ir` writes it as OpenVINO
IR (``.xml`` + ``.bin``, weights kept in float32) for users who prefer that
format. Precisions:

- ``fp32``: ``end2end.onnx`` compiled with ``INFERENCE_PRECISION_HINT=f32``.
- ``bf16``: the same file with the ``bf16`` hint. Only where the CPU has
  native BF16 (AMX-BF16 or AVX512-BF16): elsewhere OpenVINO would emulate it
  or fall back, so it is refused (:func:`check_precisions`), never chosen
  silently. OpenVINO's own default on such CPUs *is* bf16; here the hint is
  always explicit.
- ``int8``: ``end2end_int8.onnx`` (onnxruntime's QDQ quantisation of the
  convolutions, :mod:`..quantize`) compiled with the ``f32`` hint: OpenVINO
  runs the quantised convolutions in INT8 and everything else in float32.
  On x86 CPUs without VNNI OpenVINO's INT8 convolutions, like
  onnxruntime's, add products in saturating 16-bit sums that 8-bit weights
  overflow; the file is quantised with 7-bit weights there
  (:func:`..quantize.int8_weight_range`), which fits both.

What ran is read back from the compiled model (:func:`compiled_precision`:
its ``INFERENCE_PRECISION_HINT`` and the runtime precision of every
convolution), not assumed from the request. mmdeploy 1.3.1's own OpenVINO
backend is not used: its wrapper imports ``openvino.inference_engine``, which
current OpenVINO releases no longer have.

``openvino`` is an optional dependency (``pip install .[openvino]``); every
function that needs it raises :class:`OpenVINOMissing` (a ``FuseError``:
one line) without it.
"""
import functools
import os
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import FuseError
from .base import DeployBackend, register_backend
from .cpu import cpu_features

PRECISIONS = ('fp32', 'bf16', 'int8')
# the compile hint of each precision (int8 lives in the file, not the hint)
_HINT = dict(fp32='f32', bf16='bf16', int8='f32')
# OpenVINO element type names -> ours
_TYPE_NAMES = dict(f32='fp32', bf16='bf16', f16='fp16', u8='u8', i8='i8')
# the run and report name of each precision's session
NAMES = {p: f'openvino_{p}' for p in PRECISIONS}


class OpenVINOMissing(FuseError):
    """``openvino`` is not installed."""


def import_openvino():
    """The ``openvino`` module.

    Raises:
        OpenVINOMissing: it is not installed (one line naming the extra).
    """
    try:
        import openvino
    except ImportError:
        raise OpenVINOMissing(
            "`backend` openvino needs the openvino package: pip install "
            "'openvino>=2026.4,<2027' (or the project's extra: pip install "
            "'.[openvino]'; tools/setup_env.sh installs it)") from None
    return openvino


@functools.lru_cache(maxsize=None)
def openvino_core():
    """The process's one ``openvino.Core``, made on first use and kept until
    the interpreter exits; every session, IR write and capability read of
    the package uses it.

    Why one: each Core makes its own CPU plugin, which replaces the
    alternate signal stack of the thread that makes it by one it maps
    itself and saves the stack it found; destroyed, the plugin restores
    that saved stack if its own is still the current one, and unmaps its
    own in any case (OpenVINO 2026.4: ``src/plugins/intel_cpu/src/
    plugin.cpp``, ``Plugin::Plugin()`` holding a ``CPUSpecialSetup``;
    ``src/plugins/intel_cpu/src/sigstack_manager.cpp``,
    ``SigAltStackSetup::~SigAltStackSetup``). With two Cores released in
    the order they were made (a dict of sessions, a list of compiled
    models), the first unmaps its stack while the second still keeps it as
    the one to restore, and the second then restores it: the main thread's
    alternate stack is unmapped memory. The next signal handled on it (any
    Python-level handler: CPython installs them with ``SA_ONSTACK``; e.g.
    torch's DataLoader SIGCHLD handler when a tool subprocess exits) kills
    the process with SIGSEGV, si_code SI_KERNEL, si_addr 0, before
    faulthandler can print anything: the pytest-xdist worker crash of
    issue 38. One Core makes one plugin, whose stack stays mapped for the
    life of the process.

    Raises:
        OpenVINOMissing: openvino is not installed.
    """
    return import_openvino().Core()


def openvino_version() -> Optional[str]:
    """The installed OpenVINO version, or None."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__


def cpu_capabilities(cpuinfo: str = '/proc/cpuinfo') -> Dict:
    """What this CPU can run natively, for the report.

    Args:
        cpuinfo (str): the file to read the flags from. Defaults to
            ``/proc/cpuinfo``.

    Returns:
        dict: ``model`` (name), ``flags`` (flag -> bool), the summary
        booleans ``AMX``, ``BF16`` (native BF16 arithmetic: AMX-BF16 or
        AVX512-BF16), ``VNNI`` (AVX512-VNNI, AVX-VNNI or AMX-INT8) and
        ``AVX2``, ``cores`` (logical CPUs), and where OpenVINO is installed
        ``openvino`` (its version) and ``openvino_capabilities`` (the CPU
        plugin's ``OPTIMIZATION_CAPABILITIES``).
    """
    caps = cpu_features(cpuinfo)
    version = openvino_version()
    if version:
        caps['openvino'] = version
        caps['openvino_capabilities'] = list(_plugin_capabilities())
    return caps


@functools.lru_cache(maxsize=None)
def _plugin_capabilities() -> Tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES``, read once per process
    (the first one loads the CPU plugin into :func:`openvino_core`)."""
    return tuple(openvino_core().get_property('CPU',
                                              'OPTIMIZATION_CAPABILITIES'))


def _type_name(value) -> str:
    """An OpenVINO element type (or its string) as ``fp32``/``bf16``/..."""
    name = value.get_type_name() if hasattr(value, 'get_type_name') else \
        str(value)
    return _TYPE_NAMES.get(name, name)


def compiled_precision(compiled) -> Dict:
    """What a compiled model really runs.

    Returns:
        dict: ``hint`` (the compiled ``INFERENCE_PRECISION_HINT``:
        ``fp32``/``bf16``), ``convolutions`` (runtime precision -> number of
        convolution layers, e.g. ``{'u8': 56, 'fp32': 2}`` for an INT8
        file: OpenVINO names an INT8 convolution by its activation type) and
        ``threads`` (the compiled ``INFERENCE_NUM_THREADS``; 0: OpenVINO's
        choice).
    """
    convs = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info['layerType'].astype(str) == 'Convolution':
            convs[_type_name(info['runtimePrecision'].astype(str))] += 1
    return dict(hint=_type_name(compiled.get_property(
        'INFERENCE_PRECISION_HINT')), convolutions=dict(sorted(convs.items())),
        threads=int(compiled.get_property('INFERENCE_NUM_THREADS')))


def _one_line(err: Exception) -> str:
    """The informative line of an OpenVINO exception (they start with
    'Exception from src/...' lines)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not re.match(r'Exception from ', ln)]
    return (useful or lines or [type(err).__name__])[0]


class OpenVINOSession:
    """An end-to-end file compiled by OpenVINO for the CPU, with the
    ``run(output_names, feeds)`` call of an onnxruntime session (so the
    deploy check runs both the same way).

    Args:
        path (str): ``end2end.onnx`` (fp32, bf16) or ``end2end_int8.onnx``
            (int8), or an IR ``.xml``.
        precision (str): one of :data:`PRECISIONS`.
        threads (int, optional): ``INFERENCE_NUM_THREADS``; None: OpenVINO's
            choice. Defaults to None.

    Attributes:
        precision (str): the precision asked for.
        ran (dict): :func:`compiled_precision` of the compiled model.

    Raises:
        OpenVINOMissing: openvino is not installed.
        FuseError: OpenVINO cannot read or compile the file, or compiled it
            in another precision than the one asked for.
    """

    def __init__(self, path: str, precision: str,
                 threads: Optional[int] = None) -> None:
        import_openvino()
        if precision not in PRECISIONS:
            raise FuseError(f'unknown precision {precision!r}')
        config = {'PERFORMANCE_HINT': 'LATENCY',
                  'INFERENCE_PRECISION_HINT': _HINT[precision]}
        if threads:
            config['INFERENCE_NUM_THREADS'] = int(threads)
        core = openvino_core()  # never a Core of its own: see there
        try:
            model = core.read_model(path)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses
            raise FuseError(f'OpenVINO cannot read {os.path.basename(path)}: '
                            f'{_one_line(err)}') from None
        try:
            self.compiled = core.compile_model(model, 'CPU', config)
        except Exception as err:
            raise FuseError(f'OpenVINO cannot compile '
                            f'{os.path.basename(path)} for the CPU in '
                            f'{precision}: {_one_line(err)}') from None
        self.path, self.precision = path, precision
        self.ran = compiled_precision(self.compiled)
        if self.ran['hint'] != ('bf16' if precision == 'bf16' else 'fp32'):
            raise FuseError(f'OpenVINO compiled {os.path.basename(path)} in '
                            f'{self.ran["hint"]}, not {precision}')
        self._request = self.compiled.create_infer_request()
        self._outputs = {o.get_any_name(): o for o in self.compiled.outputs}

    def run(self, output_names: Optional[Sequence[str]],
            feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Run once; returns the named outputs (all with None) as numpy
        arrays, as ``onnxruntime.InferenceSession.run`` does."""
        result = self._request.infer(feeds)
        names = output_names or list(self._outputs)
        return [np.array(result[self._outputs[n]]) for n in names]


def save_ir(onnx_path: str, xml_path: str) -> List[str]:
    """Write ``onnx_path`` as OpenVINO IR (``xml_path`` and the ``.bin``
    beside it), weights in float32 (no FP16 compression: the precision is
    chosen when compiling).

    Returns:
        list[str]: the two files written.

    Raises:
        OpenVINOMissing, FuseError: no openvino, or a file it cannot read.
    """
    ov = import_openvino()
    try:
        model = openvino_core().read_model(onnx_path)
    except Exception as err:
        raise FuseError(f'OpenVINO cannot read '
                        f'{os.path.basename(onnx_path)}: {_one_line(err)}'
                        ) from None
    ov.save_model(model, xml_path, compress_to_fp16=False)
    return [xml_path, os.path.splitext(xml_path)[0] + '.bin']


def ir_names(onnx_names: Sequence[str]) -> List[str]:
    """The IR file names (``.xml``, ``.bin``) of each ONNX file name."""
    return [os.path.splitext(n)[0] + ext for n in onnx_names
            for ext in ('.xml', '.bin')]


@register_backend
class OpenVINOBackend(DeployBackend):
    """OpenVINO's CPU plugin: fp32, bf16 (native BF16 only) and int8 (the
    QDQ file), each compiled with an explicit precision hint and read back
    (:class:`OpenVINOSession`); IR as its own format."""
    name = 'openvino'
    display = 'OpenVINO'
    precisions = PRECISIONS
    native_format = 'IR'

    def version(self) -> Optional[str]:
        return openvino_version()

    def check_installed(self) -> None:
        import_openvino()

    def capabilities(self) -> Dict:
        return cpu_capabilities()

    def session(self, path: str, precision: str,
                threads: Optional[int] = None,
                custom_ops: Optional[str] = None) -> 'OpenVINOSession':
        if custom_ops:
            raise FuseError(f'OpenVINO cannot run {os.path.basename(path)}: '
                            'it needs onnxruntime custom ops (mmdeploy\'s '
                            'op library)')
        return OpenVINOSession(path, precision, threads)

    def session_name(self, precision: str) -> str:
        return NAMES[precision]

    def label(self, precision: str) -> str:
        return f'OV {precision.upper()}'

    def describe(self, session: 'OpenVINOSession') -> Dict:
        return session.ran

    def describe_line(self, described: Dict) -> str:
        return (f'hint {described["hint"]}, convolutions '
                f'{described["convolutions"]}, '
                f'{described["threads"] or "auto"} threads; ')

    def native_files(self, onnx_names: Sequence[str]) -> List[str]:
        return ir_names(onnx_names)

    def save_native(self, onnx_path: str) -> List[str]:
        return save_ir(onnx_path, os.path.splitext(onnx_path)[0] + '.xml')


def native_precisions(caps: Dict) -> List[str]:
    """The precisions this CPU runs natively, in :data:`PRECISIONS` order:
    fp32 and int8 always (INT8 is fastest with VNNI, and still runs on AVX2),
    bf16 only with native BF16 arithmetic."""
    return OpenVINOBackend().native_precisions(caps)


def check_precisions(precisions: Sequence[str], caps: Dict) -> List[str]:
    """``precisions`` checked against :data:`PRECISIONS` and the CPU
    (:meth:`~.base.DeployBackend.check_precisions`).

    Raises:
        FuseError: an unknown precision, or bf16 on a CPU without native
            BF16 (OpenVINO would emulate it or silently run f32).
    """
    return OpenVINOBackend().check_precisions(precisions, caps)


def capabilities_line(caps: Dict) -> str:
    """One line for the console: the CPU and what it runs natively."""
    return OpenVINOBackend().cpu_line(caps)
