"""INT8 post-training quantisation of the end-to-end detector (onnxruntime).

:func:`quantize_end2end` turns ``end2end.onnx`` into ``end2end_int8.onnx``
with onnxruntime's static quantisation:

* QDQ format (``QuantizeLinear`` / ``DequantizeLinear`` pairs around the
  quantised ops; onnxruntime fuses them into integer kernels), so the file
  has the same input and outputs as the FP32 one and runs in a plain
  onnxruntime session.
* Weights: signed 8-bit, symmetric, one scale per output channel.
  ``DequantizeLinear`` has no ``axis`` before opset 13 and mmdeploy exports
  opset 11, so the graph is converted to opset 13 first. Their range follows
  the CPU (:func:`int8_weight_range`): the full 8 bits where its integer dot
  products accumulate in 32 bits (VNNI, AMX, non-x86), 7 bits
  (onnxruntime's ``reduce_range``) on x86 CPUs without VNNI, whose 16-bit
  intermediate sums saturate with 8-bit weights. The report names the
  range, the CPU and why.
* Activations: unsigned 8-bit by default (U8S8). On x86 CPUs with VNNI
  onnxruntime runs U8S8 convolutions faster than FP32 and signed activations
  (S8S8) *slower* (measured: ``docs/results/deployment.md``, INT8 variants).
* Calibration: activation ranges from training images (never the images the
  mAP is measured on) through the config's test pipeline.
* Scope: only the network is quantised (``'conv'``: its convolutions,
  default; ``'network'``: every op onnxruntime can quantise among the nodes
  that feed a convolution); box decoding, score filtering and NMS stay in
  float. ``'all'`` (everything onnxruntime can quantise) exists to measure
  what quantising the post-processing costs.

How far the INT8 detections are from the FP32 ones is measured by
:func:`.detections.int8_agreement` (also importable from here). The study
over many trained detectors (FP32 vs INT8 mAP and latency) is
:func:`acnet_backbone.study.int8.int8_study`.
"""
import logging
import os
import os.path as osp
import platform
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import FuseError
from .calibration import CalibrationReader, calibration_set  # noqa: F401
from .detections import AGREEMENT_IOU, int8_agreement  # noqa: F401
from .int8_graph import (count_quantized,  # noqa: F401
                         inline_shared_constants, name_nodes, network_nodes,
                         select_nodes, to_opset)

INT8_OPSET = 13  # per-channel QDQ: DequantizeLinear's axis
SCOPES = ('conv', 'network', 'all')
ACTIVATIONS = ('u8', 's8')
# no 'entropy': through quantize_static onnxruntime 1.32 histograms with 128
# bins into 128 quantised bins, which makes its entropy threshold the full
# range, the same file as MinMax (docs/user_guides/deploy.md, INT8 notes)
METHODS = ('minmax', 'percentile')
# platform.machine() of the x86 CPUs (the 16-bit saturation below is theirs)
_X86 = ('x86_64', 'amd64', 'x86', 'i386', 'i686')


def int8_weight_range(caps: Optional[Dict] = None,
                      machine: Optional[str] = None) -> Dict:
    """The weight range of the INT8 file for this CPU: the full 8 bits where
    its integer convolutions cannot saturate, 7 bits (onnxruntime's
    ``reduce_range``) where they can.

    x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) multiply the u8
    activations by the s8 weights with ``VPMADDUBSW``, which adds two
    products into a *saturating* 16-bit sum: with 8-bit weights two large
    products exceed it (``255 * 127 * 2 = 64770 > 32767``) and the
    convolution's result is clipped. onnxruntime's x86 U8S8 kernels do
    this (its quantisation docs, "reduce_range"), S8S8 saturates there too
    (measured below), and so does OpenVINO's CPU plugin (its "Saturation
    (overflow) issue workaround").
    7-bit weights (``|w| <= 64``) keep every pair within 16 bits
    (``255 * 64 * 2 = 32640``) for one bit less weight resolution. VNNI
    (``VPDPBUSD``: AVX512-VNNI, AVX-VNNI) and AMX-INT8 accumulate in 32
    bits, so the full range is kept there.

    Measured on ``tests/test_int8.py``'s tiny detector (onnxruntime 1.32,
    OpenVINO 2026.4), relative error against FP32: 8-bit weights 0.055 with
    VNNI, 0.200 on an emulated Haswell (AVX2 only; S8S8 0.157, OpenVINO
    0.238); 7-bit weights 0.055 on both, the Haswell outputs bit for bit
    the VNNI ones (onnxruntime and OpenVINO, U8S8 and S8S8).

    The range is chosen for the CPU that quantises, assumed to be the one
    that runs the file: a file made with 8-bit weights on a VNNI CPU can
    saturate on an AVX2-only one.

    Args:
        caps (dict, optional): ``cpu_features()`` of :mod:`.backends.cpu`
            (``model``, ``VNNI``, ``AVX2``); read from ``/proc/cpuinfo``
            when None.
        machine (str, optional): ``platform.machine()``; read when None.

    Returns:
        dict: ``reduce_range`` (bool), ``weight_bits`` (7 or 8), ``reason``
        (one sentence for the report) and ``cpu`` (``model``, ``VNNI``,
        ``AVX2``).
    """
    from .backends.cpu import cpu_features
    caps = caps if caps is not None else cpu_features()
    machine = (machine if machine is not None else platform.machine()).lower()
    cpu = dict(model=caps.get('model'), VNNI=bool(caps.get('VNNI')),
               AVX2=bool(caps.get('AVX2')))
    name = cpu['model'] or 'this CPU'
    if machine not in _X86:
        reduce, reason = False, (
            f'8-bit weights: {name} is not x86 ({machine}); the 16-bit '
            'saturation of x86 CPUs without VNNI does not apply')
    elif cpu['VNNI']:
        reduce, reason = False, (
            f'8-bit weights: {name} has VNNI (32-bit accumulation), so the '
            'integer convolutions cannot saturate')
    elif cpu['model'] is None:
        reduce, reason = True, (
            '7-bit weights (reduce_range): the CPU flags are unknown (no '
            '/proc/cpuinfo); x86 CPUs without VNNI saturate 16-bit '
            'intermediate sums with 8-bit weights, 7 bits are safe on every '
            'x86 CPU')
    else:
        reduce, reason = True, (
            f'7-bit weights (reduce_range): {name} has no VNNI, so its '
            'INT8 convolutions add pairs of products in saturating 16-bit '
            'sums (VPMADDUBSW), which 8-bit weights overflow')
    return dict(reduce_range=reduce, weight_bits=7 if reduce else 8,
                reason=reason, cpu=cpu)


def _check_options(scope, activations, method, opset, calib_inputs) -> None:
    for name, value, allowed in (('scope', scope, SCOPES),
                                 ('activations', activations, ACTIVATIONS),
                                 ('method', method, METHODS)):
        if value not in allowed:
            raise FuseError(f'unknown INT8 {name} {value!r} (one of '
                            f'{", ".join(allowed)})')
    if opset < INT8_OPSET:
        raise FuseError(f'per-channel INT8 needs opset >= {INT8_OPSET}, got '
                        f'{opset}')
    if not len(calib_inputs):
        raise FuseError('no calibration images')


class _NoPreprocessAdvice(logging.Filter):
    """Drops onnxruntime's advice to run ``quant_pre_process`` first: its
    shape inference fails on graphs with NonMaxSuppression (end-to-end
    detectors), and the quantiser works without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return 'pre-processing before quantization' not in \
            record.getMessage() and 'consider pre-processing' not in \
            record.getMessage()


def quantize_end2end(fp32_path: str,
                     out_path: str,
                     calib_inputs: Sequence[np.ndarray],
                     scope: str = 'conv',
                     activations: str = 'u8',
                     method: str = 'minmax',
                     opset: int = INT8_OPSET,
                     custom_ops: Optional[str] = None,
                     logger=None,
                     reduce_range: Optional[bool] = None) -> Dict:
    """Statically quantise an end-to-end ONNX detector to INT8 (QDQ).

    Args:
        fp32_path (str): the FP32 file (input ``input``).
        out_path (str): the INT8 file to write.
        calib_inputs (Sequence[np.ndarray]): calibration inputs (the
            preprocessed ``[1, 3, H, W]`` tensors of training images).
        scope (str): what to quantise: ``'conv'`` (every convolution),
            ``'network'`` (every quantisable op that feeds a convolution) or
            ``'all'`` (post-processing too). Defaults to ``'conv'``.
        activations (str): ``'u8'`` (unsigned, asymmetric) or ``'s8'``
            (signed). Weights are always signed, symmetric, per channel.
            Defaults to ``'u8'``.
        method (str): calibration: ``'minmax'`` or ``'percentile'``
            (99.999th percentile of a 2048-bin histogram). Defaults to
            ``'minmax'``.
        opset (int): the opset the graph is converted to first (at least
            13). Defaults to :data:`INT8_OPSET`.
        custom_ops (str, optional): op library for the check session.
        logger: an ``MMLogger``; None: the current one.
        reduce_range (bool, optional): weights in 7 bits instead of 8;
            None: chosen from this CPU by :func:`int8_weight_range` (7 bits
            on x86 without VNNI). Defaults to None.

    Returns:
        dict: what was done (format, types, weight range and why, scope,
        method, opset, counts of quantised weights and activations) for the
        report.

    Raises:
        FuseError: an unknown option, no calibration input, nothing to
            quantise, or a file that does not run in onnxruntime; nothing is
            left at ``out_path`` then.
    """
    import onnx
    from mmengine.logging import MMLogger
    logger = logger or MMLogger.get_current_instance()
    _check_options(scope, activations, method, opset, calib_inputs)
    weight_range = _chosen_weight_range(reduce_range)
    model = to_opset(onnx.load(fp32_path), opset)
    inline_shared_constants(model.graph)
    name_nodes(model.graph)
    op_types, nodes = select_nodes(model.graph, scope)
    staged_in = out_path + '.fp32-opset.onnx'
    onnx.save(model, staged_in)
    logger.info(f'quantising ({scope}, {activations.upper()}S8, '
                f'{weight_range["weight_bits"]}-bit weights, {method} '
                f'calibration on {len(calib_inputs)} images): '
                f'{weight_range["reason"]}')
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        _quantize_static(staged_in, out_path, calib_inputs, op_types, nodes,
                         weight_range['reduce_range'], activations, method)
        counts = count_quantized(out_path)
        if not counts['weights']:
            raise FuseError('nothing to quantise: onnxruntime quantised no '
                            'weight of the model')
        check_runs(out_path, calib_inputs[0], custom_ops)
    except FuseError:
        _remove(out_path)
        raise
    except Exception as err:
        _remove(out_path)
        raise FuseError(f'onnxruntime cannot quantise the model: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    finally:
        logging.getLogger().removeFilter(quiet)
        _remove(staged_in)
    logger.info(f'INT8: {counts["weights"]} weight tensors and '
                f'{counts["activations"]} activation tensors quantised')
    return _int8_section(out_path, weight_range, counts, activations, scope,
                         method)


def _chosen_weight_range(reduce_range: Optional[bool]) -> Dict:
    """:func:`int8_weight_range` of this CPU, overridden (and said so) when
    ``reduce_range`` asks for the other range."""
    weight_range = int8_weight_range()
    if reduce_range is not None and bool(reduce_range) != \
            weight_range['reduce_range']:
        bits = 7 if reduce_range else 8
        weight_range.update(
            reduce_range=bool(reduce_range), weight_bits=bits,
            reason=f'{bits}-bit weights: asked for (reduce_range='
            f'{bool(reduce_range)}); for this CPU: {weight_range["reason"]}')
    return weight_range


def _quantize_static(staged_in: str, out_path: str,
                     calib_inputs: Sequence[np.ndarray], op_types, nodes,
                     reduce_range: bool, activations: str,
                     method: str) -> None:
    """onnxruntime's ``quantize_static`` with this module's choices: QDQ,
    per-channel symmetric signed weights, ``activations`` and ``method``
    calibration."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    quantize_static(
        staged_in, out_path, CalibrationReader(calib_inputs),
        quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
        nodes_to_quantize=nodes, per_channel=True, reduce_range=reduce_range,
        activation_type=dict(u8=QuantType.QUInt8,
                             s8=QuantType.QInt8)[activations],
        weight_type=QuantType.QInt8,
        calibrate_method=dict(minmax=CalibrationMethod.MinMax,
                              percentile=CalibrationMethod.Percentile)[method],
        # no CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMax
        # calibrator drops every full batch of outputs unused with it
        extra_options=dict(WeightSymmetric=True,
                           ActivationSymmetric=activations == 's8'))


def _int8_section(out_path: str, weight_range: Dict, counts: Dict,
                  activations: str, scope: str, method: str) -> Dict:
    """The report's ``int8`` section of a written INT8 file."""
    weights = 'int8, symmetric, per channel' if \
        weight_range['weight_bits'] == 8 else \
        'int8 in 7 bits (reduce_range), symmetric, per channel'
    return dict(file=osp.basename(out_path), format='QDQ', weights=weights,
                weight_bits=weight_range['weight_bits'],
                reduce_range=weight_range['reduce_range'],
                weight_range_reason=weight_range['reason'],
                cpu=weight_range['cpu'],
                activations=dict(u8='uint8, asymmetric',
                                 s8='int8, symmetric')[activations],
                scope=scope, calibrate_method=method,
                quantized_weights=counts['weights'],
                quantized_activations=counts['activations'],
                opset=counts['opset'])


def _remove(path: str) -> None:
    if osp.exists(path):
        os.remove(path)


def check_runs(path: str, x: np.ndarray,
               custom_ops: Optional[str] = None) -> None:
    """Run the file once in a plain onnxruntime session and check the
    end-to-end contract: input ``input``, outputs ``dets`` ``[1, K, 5]`` and
    ``labels`` ``[1, K]``.

    Raises:
        FuseError: it does not load, run or keep the contract.
    """
    from .backends.onnxruntime import ort_session
    session = ort_session(path, custom_ops)
    names = [o.name for o in session.get_outputs()]
    if [i.name for i in session.get_inputs()] != ['input'] or \
            names[:2] != ['dets', 'labels']:
        raise FuseError(f'{osp.basename(path)} does not keep the inputs and '
                        f'outputs of the FP32 file ({names})')
    dets, labels = session.run(['dets', 'labels'], {'input': x})
    if dets.ndim != 3 or dets.shape[2] != 5 or \
            labels.shape != dets.shape[:2]:
        raise FuseError(f'{osp.basename(path)} returns dets {dets.shape} and '
                        f'labels {labels.shape}')
