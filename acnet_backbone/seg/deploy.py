"""Segmentor deployment: load a trained ACB segmentor (mmseg) strictly and
safely, fuse its backbone into mmdet's stock ``ResNet``, verify the fused
logits and per-pixel predictions, write stock-mmseg files, export ONNX.

Everything is verified before anything is written; the outputs are written
into a staging folder inside the output folder and renamed at the end.
The detector path is :func:`acnet_backbone.deploy.checkpoint.fuse_checkpoint`;
this module reuses its loading, comparison and staging helpers.
"""
import copy
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..backbones.acnet_wrapper import WRAPPER_TYPES, stock_backbone_config
from ..deploy.checkpoint import (ACB_ONLY_KEYS, TOP_KEYS, FuseError, compare,
                                 is_segmentor_config,
                                 load_checkpoint_strict, load_config,
                                 to_plain)
from ..deploy.fuse import fuse_model, has_acb
from ..deploy.mmdeploy_compat import torchscript_export_kwargs
from ..deploy.staging import check_out_dir, staged_outputs

OUTPUT_NAMES = ('fused.pth', 'fused_config.py', 'fused.onnx')
# backbones of this package that are a stock mmdet ResNet once fused
RESNET_TYPES = ('ACResNet', 'FCNResNet')
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

    The backbone becomes ``type='mmdet.ResNet'`` (an ``ACNet`` backbone: the
    stock backbone it wraps, its type as written, which the default scope
    resolves as it did in training), without ACB-only keys and ``init_cfg``;
    ``model.pretrained`` is cleared (weights come from ``fused.pth``).
    ``custom_imports`` lose ``acnet_backbone``; only a model whose head is
    this package's (``FCN32sHead``) keeps ``acnet_backbone.seg`` for it.

    Args:
        cfg (Config): the training config.

    Returns:
        Config: a deep copy, changed.

    Raises:
        FuseError: the backbone is none of this package's or has
            ``include_top=True``.
    """
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.backbone
    kind = str(backbone.get('type', '')).split('.')[-1]
    if backbone.get('type') in WRAPPER_TYPES or kind == 'ACNet':
        # the wrapped type as written: ACNet builds it in the default scope
        # (an unprefixed 'ResNet' is mmseg's), and so will the stock config
        cfg.model.backbone = stock_backbone_config(
            dict(backbone, type='ACNet'))
    elif kind in RESNET_TYPES:
        if backbone.get('include_top'):
            raise FuseError('the backbone has include_top=True: a segmentor '
                            'backbone returns stage features')
        backbone.type = 'mmdet.ResNet'
        for key in ACB_ONLY_KEYS + TOP_KEYS:
            backbone.pop(key, None)
        backbone.init_cfg = None
    else:
        raise FuseError(f'backbone {backbone.get("type")!r} is not an '
                        'acnet_backbone backbone (ACResNet, FCNResNet, ACNet)')
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    imports = [n for n in (cfg.get('custom_imports') or {}).get('imports', [])
               if n.split('.')[0] != 'acnet_backbone']
    if set(_head_types(cfg.model)) & set(OWN_HEADS):
        imports.append('acnet_backbone.seg')
    if imports:
        cfg.custom_imports = dict(cfg.get('custom_imports') or {},
                                  imports=imports)
    else:
        cfg.pop('custom_imports', None)
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
        :func:`~acnet_backbone.deploy.checkpoint.compare`.
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
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset_meta
    for inputs, samples in batches:
        samples = model.postprocess_result(
            predict(inputs), copy.deepcopy(samples))
        metric.process({}, [s.to_dict() for s in samples])
    return float(metric.evaluate(len(batches))['mIoU'])


def export_onnx(model: nn.Module, x: Tensor, path: str,
                opset: Optional[int] = None) -> None:
    """Export :class:`SegLogits` of ``model``: input ``input``
    ``[N, 3, H, W]``, output ``seg_logits`` ``[N, K, H, W]``, dynamic N, H
    and W (TorchScript exporter)."""
    kwargs = dict(input_names=['input'], output_names=['seg_logits'],
                  dynamic_axes={'input': {0: 'batch', 2: 'height',
                                          3: 'width'},
                                'seg_logits': {0: 'batch', 2: 'height',
                                               3: 'width'}},
                  **torchscript_export_kwargs())
    if opset:
        kwargs['opset_version'] = opset
    with torch.no_grad():
        torch.onnx.export(SegLogits(model).eval(), (x, ), path, **kwargs)


def onnx_predictor(path: str):
    """``inputs -> logits`` through an onnxruntime session of ``path``."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])

    def predict(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {'input': x.numpy()})[0])

    return predict


def _verify(name: str, pairs, rtol: float, logger) -> Dict:
    """:func:`check_predictions` over ``(logits, ref)`` pairs, summed (the
    worst error), logged in one line; raises FuseError when an error
    exceeds ``rtol`` or a pixel's class differs beyond a numerical tie."""
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
    if not total['max_rel_err'] <= rtol or total['unexplained']:
        raise FuseError(f'{name} check failed: relative error '
                        f'{total["max_rel_err"]:.3g} (rtol {rtol:g}), '
                        f'{total["unexplained"]} pixels of another class; '
                        'nothing written')
    return total


def _load_models(cfg: Config, config: str, checkpoint: str,
                 require_acb: bool) -> Tuple[nn.Module, nn.Module, Config,
                                             dict]:
    """(trained model, stock fused model, stock config, checkpoint)."""
    if not is_segmentor_config(cfg):
        raise FuseError(f'{config} is not an mmseg segmentor config (no '
                        'decode_head): use the detector path')
    fused_cfg = stock_seg_config(cfg)
    try:
        model = build_segmentor(cfg)
    except Exception as err:
        raise FuseError(f'cannot build the model of {config}: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if require_acb and not has_acb(model):
        raise FuseError(f'nothing to fuse: the model of {config} has no ACB')
    ckpt = load_checkpoint_strict(model, checkpoint)
    model.eval()
    stock = build_segmentor(fused_cfg).eval()
    stock.load_state_dict(fuse_model(model).state_dict(), strict=True)
    if type(stock.backbone).__module__.startswith('acnet_backbone'):
        raise RuntimeError('the fused backbone still is acnet_backbone\'s')
    return model, stock, fused_cfg, ckpt


def summary_lines(report: Dict) -> List[str]:
    """The console summary of a :func:`fuse_segmentor_checkpoint` report (as
    ``tools/fuse.py`` and ``tools/deploy.py`` print it)."""
    lines = [f'fused vs unfused: max rel err '
             f'{report["fused"]["max_rel_err"]:.3g}']
    if 'onnx' in report:
        lines.append(f'onnxruntime vs torch at {report["onnx"]["shapes"]}: '
                     f'max rel err {report["onnx"]["max_rel_err"]:.3g}')
    for name, value in report.get('mIoU', {}).items():
        lines.append(f'mIoU ({name}, {report["num_images"]} test images): '
                     f'{value:.2f}')
    return lines


def fuse_segmentor_checkpoint(config: str,
                              checkpoint: str,
                              out_dir: str,
                              onnx: bool = False,
                              shape: Tuple[int, int] = (512, 512),
                              num_images: int = 0,
                              rtol: float = 1e-4,
                              opset: Optional[int] = None,
                              force: bool = False,
                              logger=None,
                              require_acb: bool = True) -> Dict:
    """Fuse a trained ACB segmentor into a stock mmdet ResNet segmentor.

    Checks, all before anything is written: the fused stock model against
    the trained one on a random ``shape`` input and on ``num_images`` test
    images (per-pixel scores within ``rtol``, every pixel of another class a
    numerical tie, mIoU of both on those images); with ``onnx``, the ONNX
    file in onnxruntime the same way (and at a second input size, dynamic H
    and W).

    Args:
        config (str): the training config (an mmseg segmentor whose backbone
            is ``mmdet.ACResNet`` / ``mmdet.FCNResNet`` / ``mmdet.ACNet``).
        checkpoint (str): the trained checkpoint; loaded with
            ``weights_only=True`` and must match the config exactly.
        out_dir (str): where ``fused.pth``, ``fused_config.py`` and, with
            ``onnx``, ``fused.onnx`` go.
        onnx (bool): also export and check ONNX. Defaults to False.
        shape (tuple[int, int]): H, W of the random verification input.
            Defaults to (512, 512).
        num_images (int): also verify on the first images of the config's
            test set and report the mIoU on them. Defaults to 0.
        rtol (float): largest allowed relative error. Defaults to 1e-4.
        opset (int, optional): ONNX opset. Defaults to torch's default.
        force (bool): overwrite existing outputs. Defaults to False.
        logger: where progress goes (``MMLogger``); None: the current one.
        require_acb (bool): refuse a model without ACB ("nothing to fuse");
            False converts a plain ``FCNResNet`` segmentor too. Defaults to
            True.

    Returns:
        dict: the report (checks, mIoU, paths, seconds).

    Raises:
        FuseError: bad input or a failed check; nothing written.
    """
    from mmengine.logging import MMLogger
    logger = logger or MMLogger.get_current_instance()
    start = time.perf_counter()
    names = list(OUTPUT_NAMES if onnx else OUTPUT_NAMES[:2])
    cfg = load_config(config)
    check_out_dir(out_dir, names, force)
    model, stock, fused_cfg, ckpt = _load_models(cfg, config, checkpoint,
                                                 require_acb)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    trained, fused = SegLogits(model), SegLogits(stock)
    report = dict(config=config, checkpoint=checkpoint, rtol=rtol)
    batches, meta = val_batches(cfg, model, num_images) if num_images \
        else ([], {})
    with torch.no_grad():
        report['fused'] = _verify(
            'fused vs trained', ((fused(i), trained(i)) for i in
                                 [x] + [b[0] for b in batches]), rtol, logger)
        if batches:
            report['num_images'] = len(batches)
            report['mIoU'] = dict(
                trained=miou(model, trained, batches, meta),
                fused=miou(model, fused, batches, meta))

    with staged_outputs(out_dir, names) as tmp:
        meta_out = to_plain(dict(ckpt.get('meta', {})))
        meta_out['acnet_backbone'] = to_plain(dict(
            fused_from=os.path.abspath(checkpoint),
            max_rel_err=report['fused']['max_rel_err']))
        torch.save(dict(meta=meta_out, state_dict=stock.state_dict()),
                   os.path.join(tmp, 'fused.pth'))
        fused_cfg.dump(os.path.join(tmp, 'fused_config.py'))
        if onnx:
            report['onnx'] = _export_and_check(
                stock, x, batches, os.path.join(tmp, 'fused.onnx'), opset,
                max(rtol, 1e-4), logger)
            if batches:
                report['mIoU']['onnx'] = miou(
                    model, onnx_predictor(os.path.join(tmp, 'fused.onnx')),
                    batches, meta)
    if 'mIoU' in report:
        logger.info('mIoU on %d test images: %s', report['num_images'],
                    ', '.join(f'{k} {v:.2f}' for k, v in
                              report['mIoU'].items()))
    report['outputs'] = [os.path.join(out_dir, n) for n in names]
    report['seconds'] = time.perf_counter() - start
    return report


def _export_and_check(model: nn.Module, x: Tensor, batches: Sequence[Tuple],
                      path: str, opset: Optional[int], rtol: float,
                      logger) -> Dict:
    """Export ``model`` to ``path``, then check it in onnxruntime against
    torch on ``x``, on an input of another size and on ``batches``."""
    try:
        export_onnx(model, x, path, opset)
    except Exception as err:
        raise FuseError(f'cannot export the fused segmentor to ONNX: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    h, w = x.shape[-2:]
    other = torch.randn(1, 3, max(64, (h // 2) // 32 * 32),
                        max(64, (w * 3 // 4) // 32 * 32),
                        generator=torch.Generator().manual_seed(1))
    predict, torch_logits = onnx_predictor(path), SegLogits(model)
    inputs = [x, other] + [b[0] for b in batches]
    with torch.no_grad():
        return dict(shapes=sorted({tuple(i.shape[2:]) for i in inputs}),
                    **_verify('onnxruntime vs torch',
                              ((predict(i), torch_logits(i)) for i in inputs),
                              rtol, logger))
