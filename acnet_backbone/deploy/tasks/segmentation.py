"""The segmentation adapter of the deploy core (mmseg segmentors): build,
stock config, the per-pixel logits module, per-pixel checks (a class that
differs only where the reference's top two scores tie), mIoU of trained,
fused and ONNX models on test images."""
import copy
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from ...errors import FuseError
from ..backends.onnxruntime import ort_session
from ..common import (compare, export_onnx, median_ms, other_size_input,
                      random_input, stock_backbone, without_own_imports)
from .base import Task

# modules of acnet_backbone.seg that a fused config may still need
OWN_HEADS = ('FCN32sHead', )


def _head_types(model_cfg: dict) -> List[str]:
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        head = model_cfg.get(key)
        for h in (head if isinstance(head, (list, tuple)) else [head]):
            if isinstance(h, dict):
                heads.append(str(h.get('type', '')).split('.')[-1])
    return heads


def stock_seg_config(cfg: Config) -> Config:
    """The config of the fused segmentor.

    The backbone takes its stock form
    (:func:`~acnet_backbone.deploy.common.stock_backbone`:
    ``type='mmdet.ResNet'``, or the stock backbone an ``ACNet`` wraps, its
    type as written, which the default scope resolves as it did in
    training); ``model.pretrained`` is cleared (weights come from
    ``fused.pth``). ``custom_imports`` lose ``acnet_backbone``; only a model
    whose head is this package's (``FCN32sHead``) keeps
    ``acnet_backbone.seg`` for it.

    Args:
        cfg (Config): the training config.

    Returns:
        Config: a deep copy, changed.

    Raises:
        FuseError: the backbone is none of this package's or has
            ``include_top=True``.
    """
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone = stock_backbone(cfg.model.backbone, 'mmdet.ResNet',
                                        'segmentor')
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    own = bool(set(_head_types(cfg.model)) & set(OWN_HEADS))
    without_own_imports(cfg, ['acnet_backbone.seg'] if own else [])
    return cfg


def build_segmentor(cfg: Config) -> nn.Module:
    """The segmentor of ``cfg`` (mmseg's registry, default scope ``mmseg``)
    with no backbone init: a checkpoint supplies the weights."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    return MODELS.build(model_cfg)


class SegLogits(nn.Module):
    """``[N, 3, H, W]`` -> ``[N, K, H, W]`` per-pixel class scores, as mmseg's
    whole-image inference computes them before cropping padding
    (``encode_decode``): the function exported to ONNX."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: Tensor) -> Tensor:
        metas = [dict(img_shape=x.shape[2:])] * x.shape[0]
        return self.segmentor.encode_decode(x, metas)


def check_predictions(logits: Tensor, ref: Tensor) -> Dict:
    """Per-pixel agreement of two ``[N, K, H, W]`` score maps.

    A pixel whose class differs is a numerical tie when the reference's top
    two scores there are closer than twice the largest absolute difference
    of the maps; any other differing pixel is ``unexplained``.

    Returns:
        dict: ``pixels``, ``differing``, ``unexplained``, errors of
        :func:`~acnet_backbone.deploy.common.compare`.
    """
    err = compare([logits], [ref])
    differ = logits.argmax(1) != ref.argmax(1)
    top2 = ref.double().topk(2, dim=1).values
    tie = (top2[:, 0] - top2[:, 1]) <= 2 * err['max_abs_err']
    return dict(pixels=int(differ.numel()), differing=int(differ.sum()),
                unexplained=int((differ & ~tie).sum()), **err)


def val_batches(cfg: Config, model: nn.Module,
                num: int) -> Tuple[List[Tuple], dict]:
    """The first ``num`` images of the config's test set through its
    pipeline and the model's data preprocessor: ``(inputs, samples)`` per
    image, the samples holding ``gt_sem_seg``; and the set's metainfo."""
    from mmseg.registry import DATASETS
    try:
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    except Exception as err:
        raise FuseError(f'cannot read the test set of the config: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    batches = []
    for i in range(min(num, len(dataset))):
        data = dataset[i]
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]), False)
        batches.append((batch['inputs'], batch['data_samples']))
    return batches, dataset.metainfo


def miou(model: nn.Module, predict, batches: Sequence[Tuple],
         dataset_meta: dict) -> float:
    """mmseg's ``IoUMetric`` mIoU (percent) of ``predict`` (inputs ->
    logits) on ``batches``, through the model's own post-processing (padding
    removed, resized to the original shape, argmax)."""
    return miou_of(model, [predict(inputs) for inputs, _ in batches],
                   batches, dataset_meta)


def miou_of(model: nn.Module, logits: Sequence[Tensor],
            batches: Sequence[Tuple], dataset_meta: dict) -> float:
    """:func:`miou` of logits already computed, one per batch."""
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset_meta
    for out, (_, samples) in zip(logits, batches):
        samples = model.postprocess_result(out, copy.deepcopy(samples))
        metric.process({}, [s.to_dict() for s in samples])
    return float(metric.evaluate(len(batches))['mIoU'])


def export_seg_onnx(model: nn.Module, x: Tensor, path: str,
                    opset=None) -> None:
    """Export :class:`SegLogits` of ``model``: input ``input``
    ``[N, 3, H, W]``, output ``seg_logits`` ``[N, K, H, W]``, dynamic N, H
    and W."""
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    export_onnx(SegLogits(model), x, path, ['seg_logits'],
                {'input': axes, 'seg_logits': axes}, opset)


def session_predictor(session):
    """``inputs -> logits`` through a session of the exported file
    (onnxruntime's, or an ``OpenVINOSession``: the same ``run`` call)."""

    def predict(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {'input': x.numpy()})[0])

    return predict


def onnx_predictor(path: str, threads: Optional[int] = None):
    """``inputs -> logits`` through an onnxruntime session of ``path``."""
    return session_predictor(ort_session(path, threads=threads))


def check_pairs(name: str, pairs, logger) -> Dict:
    """:func:`check_predictions` over ``(logits, ref)`` pairs, summed (the
    worst error), logged in one line."""
    checks = [check_predictions(logits, ref) for logits, ref in pairs]
    total = dict(inputs=len(checks),
                 max_rel_err=max(c['max_rel_err'] for c in checks),
                 max_abs_err=max(c['max_abs_err'] for c in checks),
                 **{k: sum(c[k] for c in checks)
                    for k in ('pixels', 'differing', 'unexplained')})
    logger.info(f'{name} on {total["inputs"]} input(s): max rel err '
                f'{total["max_rel_err"]:.3g}, {total["differing"]} of '
                f'{total["pixels"]} pixels of another class '
                f'({total["unexplained"]} not numerical ties)')
    return total


def verify_pairs(name: str, pairs, rtol: float, logger) -> Dict:
    """:func:`check_pairs`; raises FuseError when an error exceeds ``rtol``
    or a pixel's class differs beyond a numerical tie."""
    total = check_pairs(name, pairs, logger)
    if not total['max_rel_err'] <= rtol or total['unexplained']:
        raise FuseError(f'{name} check failed: relative error '
                        f'{total["max_rel_err"]:.3g} (rtol {rtol:g}), '
                        f'{total["unexplained"]} pixels of another class; '
                        'nothing written')
    return total


class SegmentationTask(Task):
    """mmseg segmentors: per-pixel checks on a random input and on
    ``num_images`` test images (whose mIoU is reported)."""
    name = 'segmentor'
    default_shape = (512, 512)

    def check_options(self, opts) -> None:
        if opts.image is not None:
            raise FuseError('`image` is for detectors; a segmentor is '
                            'verified on `num_images` test images')

    def build(self, cfg: Config) -> nn.Module:
        return build_segmentor(cfg)

    def stock_config(self, cfg: Config) -> Config:
        return stock_seg_config(cfg)

    def verify(self, report, model, stock, cfg, opts, logger) -> Dict:
        x = random_input(opts.shape or self.default_shape)
        trained, fused = SegLogits(model), SegLogits(stock)
        report['rtol'] = opts.rtol
        batches, meta = val_batches(cfg, model, opts.num_images) \
            if opts.num_images else ([], {})
        with torch.no_grad():
            report['fused'] = verify_pairs(
                'fused vs trained', ((fused(i), trained(i)) for i in
                                     [x] + [b[0] for b in batches]),
                opts.rtol, logger)
            if batches:
                report['num_images'] = len(batches)
                report['mIoU'] = dict(
                    trained=miou(model, trained, batches, meta),
                    fused=miou(model, fused, batches, meta))
        return dict(x=x, batches=batches, meta=meta)

    def fused_error(self, report: Dict) -> float:
        return report['fused']['max_rel_err']

    def add_onnx(self, report, model, stock, state, path, opts,
                 logger) -> None:
        x, batches = state['x'], state['batches']
        export_seg_onnx(stock, x, path, opts.opset)
        predict, torch_logits = onnx_predictor(path), SegLogits(stock)
        inputs = [x, other_size_input(x)] + [b[0] for b in batches]
        with torch.no_grad():
            report['onnx'] = dict(
                shapes=sorted({tuple(i.shape[2:]) for i in inputs}),
                **verify_pairs('onnxruntime vs torch',
                               ((predict(i), torch_logits(i))
                                for i in inputs),
                               max(opts.rtol, 1e-4), logger))
        if batches:
            report['mIoU']['onnx'] = miou(model, predict, batches,
                                          state['meta'])
        if opts.precisions:
            add_backend(report, model, stock, state, path, opts, logger)

    def summary_lines(self, report: Dict) -> List[str]:
        lines = [f'fused vs unfused: max rel err '
                 f'{report["fused"]["max_rel_err"]:.3g}']
        if 'onnx' in report:
            lines.append(f'onnxruntime vs torch at '
                         f'{report["onnx"]["shapes"]}: max rel err '
                         f'{report["onnx"]["max_rel_err"]:.3g}')
        from ..backends import all_backends
        for backend in all_backends():
            ran = report.get(backend.name, {}).get('precisions', {})
            for p, v in ran.items():
                done = backend.describe_line(v['compiled'])[:-2]
                lines.append(f'{backend.display} {p.upper()} vs torch'
                             + (f' (ran: {done})' if done else '') +
                             f': max rel err {v["max_rel_err"]:.3g}, '
                             f'{v["differing"]} of {v["pixels"]} pixels of '
                             'another class')
        for name, value in report.get('mIoU', {}).items():
            lines.append(f'mIoU ({name}, {report["num_images"]} test '
                         f'images): {value:.2f}')
        lat = report.get('latency_ms')
        if lat:
            lines.append('median latency (ms, ' + 'x'.join(
                map(str, lat['shape'])) + f', {lat["threads"] or "auto"} '
                'threads): ' + ', '.join(
                    f'{k} {v:.2f}' for k, v in lat['median'].items()))
        return lines


def add_backend(report: Dict, model: nn.Module, stock: nn.Module,
                state: Dict, path: str, opts, logger) -> None:
    """Run ``fused.onnx`` in the deploy backend ``opts.backend`` (a
    registered :class:`~acnet_backbone.deploy.backends.DeployBackend`) at
    each of ``opts.precisions``, interleaved with torch and onnxruntime on
    the same inputs (the test images, else the random check input).

    Adds ``report[<backend name>]`` (version, CPU, per precision what the
    backend says it compiled and its per-pixel agreement with torch),
    ``report['latency_ms']`` (median per runtime, ``shape``, ``threads``)
    and, on test images, the mIoU of each precision. FP32 must pass the
    check onnxruntime passes; lower precisions are reported, not enforced.
    With ``opts.save_ir`` also writes the backend's own files of ``path``
    (OpenVINO: ``fused.xml``/``.bin``) beside it.

    Raises:
        FuseError: the backend cannot load the file, or FP32 fails its
            check.
    """
    from ..backends import backend_for
    backend = backend_for(opts.backend)
    batches = state['batches']
    inputs = [b[0] for b in batches] or [state['x']]
    sessions = backend.sessions(dict(onnx=path), opts.precisions,
                                opts.threads, logger)
    runners = dict(torch=SegLogits(stock),
                   onnx=onnx_predictor(path, opts.threads),
                   **{n: session_predictor(s) for n, s in sessions.items()})
    outs = {name: [] for name in runners}
    seconds = {name: [] for name in runners}
    with torch.no_grad():
        for x in inputs:
            for name, run in runners.items():
                t0 = time.perf_counter()
                outs[name].append(run(x))
                seconds[name].append(time.perf_counter() - t0)
    section = dict(version=backend.version(), cpu=backend.capabilities(),
                   precisions={})
    for precision in opts.precisions:
        name = backend.session_name(precision)
        label = f'{backend.display} {precision} vs torch'
        pairs = list(zip(outs[name], outs['torch']))
        check = verify_pairs(label, pairs, max(opts.rtol, 1e-4), logger) \
            if precision == 'fp32' else check_pairs(label, pairs, logger)
        section['precisions'][precision] = dict(
            name=name, compiled=backend.describe(sessions[name]), **check)
        if batches:
            report['mIoU'][name] = miou_of(model, outs[name], batches,
                                           state['meta'])
    report[backend.name] = section
    report['latency_ms'] = dict(
        median={n: median_ms(t) for n, t in seconds.items()},
        shape=list(inputs[-1].shape[2:]), inputs=len(inputs),
        threads=opts.threads, torch_threads=torch.get_num_threads())
    if opts.save_ir:
        backend.save_native(path)
