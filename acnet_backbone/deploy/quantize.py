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

The study over many trained detectors (FP32 vs INT8 mAP and latency) is
:func:`acnet_backbone.study.int8.int8_study`.
"""
import logging
import os
import os.path as osp
import platform
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from mmengine.config import Config

from ..errors import FuseError
from .tasks.detection import dataset_images, preprocess

INT8_OPSET = 13  # per-channel QDQ: DequantizeLinear's axis
SCOPES = ('conv', 'network', 'all')
ACTIVATIONS = ('u8', 's8')
# no 'entropy': through quantize_static onnxruntime 1.32 histograms with 128
# bins into 128 quantised bins, which makes its entropy threshold the full
# range, the same file as MinMax (docs/user_guides/deploy.md, INT8 notes)
METHODS = ('minmax', 'percentile')
# IoU at which an INT8 detection counts as the FP32 one (same label)
AGREEMENT_IOU = 0.5
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


def calibration_set(cfg: Config, config: str,
                    calib_images: Union[int, Sequence[str]]) -> Dict:
    """The calibration inputs: training images through the test pipeline and
    the model's data preprocessor.

    Args:
        cfg (Config): the training config.
        config (str): its path (for messages).
        calib_images (int | Sequence[str]): how many training images (evenly
            spread over the training set), or the image files.

    Returns:
        dict: ``paths``, ``inputs`` (float32 ``[1, 3, H, W]`` arrays) and
        ``source`` (a description for the report).

    Raises:
        FuseError: no image, or an image that does not load.
    """
    from mmdet.registry import MODELS
    if isinstance(calib_images, int):
        if calib_images < 1:
            raise FuseError(f'no calibration images (asked for '
                            f'{calib_images})')
        paths = dataset_images(cfg, calib_images, split='train', spread=True)
        source = 'training set, evenly spaced, test pipeline'
        if not paths:
            raise FuseError(f'no calibration images: the training set of '
                            f'{config} is empty')
    else:
        paths, source = list(calib_images), 'given files, test pipeline'
        if not paths:
            raise FuseError('no calibration images given')
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    inputs = []
    for path in paths:
        if not osp.isfile(path):
            raise FuseError(f'calibration image not found: {path}')
        try:
            x = preprocess(cfg, preprocessor, path)[0]
        except Exception as err:
            raise FuseError(f'calibration image {path} cannot be read '
                            f'({type(err).__name__})') from None
        inputs.append(x.numpy().astype(np.float32))
    return dict(paths=paths, inputs=inputs, source=source)


class _Reader:
    """onnxruntime's calibration data reader over a list of inputs."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs = iter(inputs)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        x = next(self._inputs, None)
        return None if x is None else {'input': x}


def network_nodes(graph) -> Set[str]:
    """Names of the nodes that are convolutions or feed one (transitively):
    the network, as opposed to the post-processing after its last convs."""
    producer = {out: node for node in graph.node for out in node.output}
    keep, stack = set(), [n for n in graph.node if n.op_type == 'Conv']
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer)
    return keep


def _name_nodes(graph) -> None:
    """Give every unnamed node a unique name (node selection needs one)."""
    used = {n.name for n in graph.node}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f'{node.op_type}_{i}'
            while name in used:
                name += '_'
            node.name = name
            used.add(name)


def inline_shared_constants(graph) -> int:
    """Replace each ``Identity`` of an initializer by a copy of it, in place.

    torch's exporter stores equal parameters once and hands them on through
    ``Identity`` nodes (e.g. the zero biases of untrained convs); onnxruntime
    then finds no bias initializer ("Expected bias ... to be an initializer")
    and leaves those convs partly float, which costs speed (measured on the
    R50 RetinaNet: 0.69x instead of 0.23x of the FP32 time).

    Returns:
        int: the number of nodes replaced.
    """
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep, copies = [], []
    for node in graph.node:
        if node.op_type == 'Identity' and node.input[0] in inits and \
                node.output[0] not in outputs:
            copy = type(inits[node.input[0]])()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            copies.append(copy)
        else:
            keep.append(node)
    if copies:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(copies)
    return len(copies)


def _select(graph, scope: str) -> Tuple[Optional[List[str]],
                                        Optional[List[str]]]:
    """(op types, node names) to quantise for ``scope``."""
    convs = [n.name for n in graph.node if n.op_type == 'Conv']
    if not convs:
        raise FuseError('nothing to quantise: the model has no convolution')
    if scope == 'conv':
        return ['Conv'], convs
    if scope == 'network':
        return None, sorted(network_nodes(graph))
    return None, None


def _to_opset(model, opset: int):
    import onnx
    from onnx import version_converter
    current = max((o.version for o in model.opset_import
                   if o.domain in ('', 'ai.onnx')), default=0)
    if current >= opset:
        return model
    try:
        converted = version_converter.convert_version(model, opset)
        onnx.checker.check_model(converted)
    except Exception as err:
        raise FuseError(f'cannot convert the ONNX file from opset {current} '
                        f'to {opset}: {type(err).__name__}: '
                        f'{err}'.splitlines()[0])
    return converted


def count_quantized(path: str) -> Dict[str, int]:
    """How many weight tensors (8-bit constants; int32 biases not counted)
    and activation tensors the QDQ file quantises, and its opset."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    types = {i.name: i.data_type for i in graph.initializer}
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    q = [n for n in graph.node if n.op_type == 'QuantizeLinear']
    dq = [n for n in graph.node if n.op_type == 'DequantizeLinear']
    return dict(
        weights=sum(types.get(n.input[0]) in eight_bit for n in dq),
        activations=sum(n.input[0] not in types for n in q),
        opset=max(o.version for o in model.opset_import
                  if o.domain in ('', 'ai.onnx')))


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
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    logger = logger or MMLogger.get_current_instance()
    _check_options(scope, activations, method, opset, calib_inputs)
    weight_range = int8_weight_range()
    if reduce_range is not None and bool(reduce_range) != \
            weight_range['reduce_range']:
        bits = 7 if reduce_range else 8
        weight_range.update(
            reduce_range=bool(reduce_range), weight_bits=bits,
            reason=f'{bits}-bit weights: asked for (reduce_range='
            f'{bool(reduce_range)}); for this CPU: {weight_range["reason"]}')
    model = _to_opset(onnx.load(fp32_path), opset)
    inline_shared_constants(model.graph)
    _name_nodes(model.graph)
    op_types, nodes = _select(model.graph, scope)
    staged_in = out_path + '.fp32-opset.onnx'
    onnx.save(model, staged_in)
    act_type = dict(u8=QuantType.QUInt8, s8=QuantType.QInt8)[activations]
    calib_method = dict(minmax=CalibrationMethod.MinMax,
                        percentile=CalibrationMethod.Percentile)[method]
    logger.info(f'quantising ({scope}, {activations.upper()}S8, '
                f'{weight_range["weight_bits"]}-bit weights, {method} '
                f'calibration on {len(calib_inputs)} images): '
                f'{weight_range["reason"]}')
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_static(
            staged_in, out_path, _Reader(calib_inputs),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
            nodes_to_quantize=nodes, per_channel=True,
            reduce_range=weight_range['reduce_range'],
            activation_type=act_type, weight_type=QuantType.QInt8,
            calibrate_method=calib_method,
            # no CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMax
            # calibrator drops every full batch of outputs unused with it
            extra_options=dict(WeightSymmetric=True,
                               ActivationSymmetric=activations == 's8'))
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


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``a [N, 4]`` and ``b [M, 4]`` (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def int8_agreement(fp32: Iterable[Tuple[np.ndarray, np.ndarray]],
                   int8: Iterable[Tuple[np.ndarray, np.ndarray]],
                   score_thr: float = 0.3,
                   iou: float = AGREEMENT_IOU) -> Dict:
    """How well the INT8 file's detections reproduce the FP32 file's.

    Each FP32 detection scoring at least ``score_thr`` is matched greedily
    (highest score first) to an unused INT8 detection of the same label
    with IoU >= ``iou`` (any INT8 score).

    Returns:
        dict: ``detections`` (FP32, above the threshold), ``matched``
        (fraction found in INT8), ``mean_iou`` and ``max_score_err`` of the
        matched pairs, and the thresholds.
    """
    n, ious, score_errs = 0, [], []
    for (fd, fl), (qd, ql) in zip(fp32, int8, strict=True):
        keep = fd[:, 4] >= score_thr
        order = np.argsort(-fd[keep, 4], kind='stable')
        fd, fl = fd[keep][order], fl[keep][order]
        n += len(fd)
        if not len(fd) or not len(qd):
            continue
        overlap = _iou(fd[:, :4], qd[:, :4])
        used = np.zeros(len(qd), bool)
        for i in range(len(fd)):
            cand = np.where(~used & (ql == fl[i]) & (overlap[i] >= iou))[0]
            if len(cand):
                j = cand[int(overlap[i, cand].argmax())]
                used[j] = True
                ious.append(float(overlap[i, j]))
                score_errs.append(abs(float(qd[j, 4] - fd[i, 4])))
    return dict(detections=n, score_thr=score_thr, iou_thr=iou,
                matched=round(len(ious) / n, 4) if n else None,
                mean_iou=round(float(np.mean(ious)), 4) if ious else None,
                max_score_err=round(max(score_errs), 4) if score_errs
                else None)


def __getattr__(name: str):
    """``int8_study`` moved to :mod:`acnet_backbone.study.int8` (a study,
    not a deploy step); the old name still resolves."""
    if name == 'int8_study':
        import importlib
        return importlib.import_module('acnet_backbone.study.int8').int8_study
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
