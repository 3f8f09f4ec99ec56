"""The detection adapter of the deploy core (mmdet detectors): build, stock
config, tensor-mode module, the fused-vs-trained check on an image or a
random input, the ONNX check, sample inputs from the config's datasets."""
import copy
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ...errors import FuseError
from ..backends.onnxruntime import ort_session
from ..common import (compare, export_onnx, flatten_outputs,
                      other_size_input, random_input, stock_backbone,
                      without_own_imports)
from .base import Task


def tensor_forward(model: nn.Module, x: Tensor):
    """``model(x, mode='tensor')`` with one data sample per image that
    describes ``x`` (two-stage detectors read image shapes from it even in
    tensor mode; single-stage ones ignore it)."""
    from mmdet.structures import DetDataSample
    h, w = x.shape[-2:]
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    samples = [DetDataSample() for _ in range(x.shape[0])]
    for sample in samples:
        # set_field, not metainfo=: that deep-copies the sizes, which are
        # tensors under the tracer, and torch 2.1's tracer cannot copy them
        for key, value in meta.items():
            sample.set_field(value, key, field_type='metainfo')
    return model(x, samples, mode='tensor')


class TensorModeWrapper(nn.Module):
    """``detector(x, mode='tensor')`` as a module returning a flat tuple (what
    ONNX export and FLOP counting need)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return tuple(flatten_outputs(tensor_forward(self.detector, x)))


def stock_config(cfg: Config) -> Config:
    """The config of the fused detector: the backbone's stock form
    (:func:`~acnet_backbone.deploy.common.stock_backbone`: mmdet's
    ``ResNet``, or the stock backbone an ``ACNet`` wraps) and
    acnet_backbone's ``custom_imports`` removed.

    Raises:
        FuseError: the backbone is none of this package's (nothing to fuse)
            or has ``include_top=True``.
    """
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone = stock_backbone(cfg.model.backbone, 'ResNet',
                                        'detector')
    without_own_imports(cfg)
    return cfg


def build_detector(cfg: Config) -> nn.Module:
    """The detector of ``cfg`` (mmdet's registry, default scope ``mmdet``)
    with no backbone ``init_cfg``: a checkpoint supplies the weights."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None  # the checkpoint supplies weights
    return MODELS.build(model_cfg)


def test_pipeline(cfg: Config, from_array: bool = False) -> List[dict]:
    """The config's test pipeline without its annotation loading.

    Args:
        cfg (Config): a detector config.
        from_array (bool): the first step reads the image from an array
            (``results['img']``, BGR ``uint8`` ``[H, W, 3]``: mmdet's
            ``LoadImageFromNDArray``) instead of ``img_path``. Defaults to
            False.

    Returns:
        list[dict]: the transforms' configs (a copy).
    """
    pipeline = [t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
                if 'Annotations' not in t['type']]
    if from_array:
        pipeline[0] = dict(type='mmdet.LoadImageFromNDArray')
    return pipeline


def preprocess(cfg: Config, model: nn.Module, path: str):
    """One image through the config's test pipeline (annotations not loaded)
    and the data preprocessor of ``model`` (a detector, or the preprocessor
    itself): ``(inputs [1, 3, H, W], data_samples)``, what the network
    sees."""
    from mmcv.transforms import Compose
    data = Compose(test_pipeline(cfg))(dict(img_path=path, img_id=0))
    batch = getattr(model, 'data_preprocessor', model)(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    return batch['inputs'], batch['data_samples']


def image_input(cfg: Config, model: nn.Module, image: str) -> Tensor:
    """A real image through the config's test pipeline and the model's data
    preprocessor: the ``[1, 3, H, W]`` tensor the network sees."""
    if not os.path.isfile(image):
        raise FuseError(f'image not found: {image}')
    return preprocess(cfg, model, image)[0]


def dataset_images(cfg: Config, limit: Optional[int],
                   split: str = 'test', spread: bool = False) -> List[str]:
    """Image paths of the config's ``split`` (``'test'`` or ``'train'``)
    dataset (wrappers such as ``RepeatDataset`` unwrapped): the first
    ``limit``, or with ``spread`` ``limit`` images evenly spaced over the
    set; None: all."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds_cfg = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
    while 'dataset' in ds_cfg:
        ds_cfg = ds_cfg.dataset
    ds_cfg.pipeline = []
    ds_cfg.lazy_init = False
    ds_cfg.serialize_data = False  # an empty set cannot be serialised
    dataset = DATASETS.build(ds_cfg)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    index = (np.linspace(0, len(dataset) - 1, n).round().astype(int)
             if spread and n else range(n))
    return [dataset.get_data_info(int(i))['img_path'] for i in index]


def complexity(model: nn.Module, x: Tensor) -> Dict:
    """Parameters and FLOPs of a detector in tensor mode on ``x``."""
    from mmengine.analysis import FlopAnalyzer
    wrapper = TensorModeWrapper(model).eval()
    flops = FlopAnalyzer(wrapper, (x,))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return dict(params=sum(p.numel() for p in model.parameters()),
                flops=int(flops.total()))


def check_onnx(path: str, inputs: Sequence[Tensor],
               references: Sequence[Sequence[Tensor]]) -> List[Dict]:
    """Run the ONNX file in onnxruntime on each input and compare with
    ``references``, the torch model's flat outputs for the same inputs."""
    session = ort_session(path)
    results = []
    for x, ref in zip(inputs, references, strict=True):
        got = session.run(None, {'input': x.numpy()})
        err = compare([torch.from_numpy(g) for g in got], ref)
        results.append(dict(shape=list(x.shape[-2:]), **err))
    return results


def export_and_check_onnx(model: nn.Module, x: Tensor, path: str,
                          opset: Optional[int], rtol: float,
                          logger) -> List[Dict]:
    """Export ``model`` (tensor mode, dynamic H and W) to ``path`` and check
    the file in onnxruntime against torch on ``x`` and on a second input of
    another size.

    Returns:
        list[dict]: per input, its shape and the errors of ``compare``.

    Raises:
        FuseError: the export fails or a relative error exceeds ``rtol``.
    """
    other = other_size_input(x)
    with torch.no_grad():
        refs = [flatten_outputs(tensor_forward(model, i)) for i in (x, other)]
    export_onnx(TensorModeWrapper(model), x, path,
                [f'output{i}' for i in range(len(refs[0]))],
                {'input': {2: 'height', 3: 'width'}}, opset)
    results = check_onnx(path, [x, other], refs)
    for r in results:
        logger.info(f'onnxruntime vs torch at {r["shape"]}: max abs '
                    f'err {r["max_abs_err"]:.3g}, max rel err '
                    f'{r["max_rel_err"]:.3g}')
    worst = max(r['max_rel_err'] for r in results)
    if not worst <= rtol:
        raise FuseError(f'ONNX check failed: relative error '
                        f'{worst:.3g}; nothing written')
    return results


class DetectionTask(Task):
    """mmdet detectors: checked on ``image`` or a random input, in tensor
    mode (every head output), FLOPs before and after with ``analyze``."""
    name = 'detector'
    default_shape = (800, 1333)

    def check_options(self, opts) -> None:
        if opts.num_images:
            raise FuseError('`num_images` is for segmentors; a detector is '
                            'verified on `image` or a random input')
        if opts.precisions or opts.save_ir:
            raise FuseError('a detector runs in OpenVINO end to end '
                            '(decoding and NMS in the file): '
                            'acnet_backbone.deploy.end2end.deploy_checkpoint '
                            "with backend='openvino'")

    def build(self, cfg: Config) -> nn.Module:
        return build_detector(cfg)

    def stock_config(self, cfg: Config) -> Config:
        return stock_config(cfg)

    def check_model(self, model: nn.Module, opts, config: str) -> None:
        if opts.onnx and hasattr(model, 'roi_head'):
            # mmdet 3.3's tensor-mode graph of a two-stage detector does not
            # trace to ONNX (its RPN decoding imports the removed mmdet.core,
            # and the traced RPN keeps other proposals than torch); mmdeploy
            # rewrites those steps
            raise FuseError(f'`onnx` exports one-stage detectors; the model '
                            f'of {config} is two-stage: export it end to end '
                            'with tools/deploy.py')

    def verify(self, report, model, stock, cfg, opts, logger) -> Tensor:
        x = image_input(cfg, model, opts.image) if opts.image else \
            random_input(opts.shape or self.default_shape)
        with torch.no_grad():
            err = compare(flatten_outputs(tensor_forward(stock, x)),
                          flatten_outputs(tensor_forward(model, x)))
        report.update(input_shape=list(x.shape), rtol=opts.rtol, **err)
        logger.info(f'fused vs unfused on {tuple(x.shape)}: max abs err '
                    f'{err["max_abs_err"]:.3g}, max rel err '
                    f'{err["max_rel_err"]:.3g}')
        if not err['max_rel_err'] <= opts.rtol:
            raise FuseError(f'verification failed: relative error '
                            f'{err["max_rel_err"]:.3g} > {opts.rtol:g}; '
                            'nothing written')
        if opts.analyze:
            report['before'] = complexity(model, x)
            report['after'] = complexity(stock, x)
            logger.info(f'params {report["before"]["params"]:,} -> '
                        f'{report["after"]["params"]:,}; FLOPs '
                        f'{report["before"]["flops"] / 1e9:.2f} G -> '
                        f'{report["after"]["flops"] / 1e9:.2f} G')
        return x

    def fused_error(self, report: Dict) -> float:
        return report['max_rel_err']

    def add_onnx(self, report, model, stock, state, path, opts,
                 logger) -> None:
        report['onnx'] = export_and_check_onnx(
            stock, state, path, opts.opset, max(opts.rtol, 1e-4), logger)

    def summary_lines(self, report: Dict) -> List[str]:
        lines = [f'fused vs unfused: max abs err {report["max_abs_err"]:.3g}'
                 f', max rel err {report["max_rel_err"]:.3g} (input '
                 f'{tuple(report["input_shape"])})']
        if 'before' in report:
            b, a = report['before'], report['after']
            lines.append(f'parameters {b["params"]:,} -> {a["params"]:,}; '
                         f'FLOPs {b["flops"] / 1e9:.2f} G -> '
                         f'{a["flops"] / 1e9:.2f} G')
        for r in report.get('onnx', []):
            lines.append(f'onnxruntime vs torch at {tuple(r["shape"])}: max '
                         f'abs err {r["max_abs_err"]:.3g}, max rel err '
                         f'{r["max_rel_err"]:.3g}')
        return lines
