"""Whole-detector deployment: load a trained ACResNet detector strictly and
safely, fuse it, verify it numerically, write stock-mmdet files, export ONNX.

Everything is verified before anything is written, and every output is
written to a temporary file in the output folder and renamed at the end.
"""
import copy
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..backbones.acnet_wrapper import WRAPPER_TYPES, stock_backbone_config
from ..safe_load import UnsafeCheckpointError, safe_load
from .errors import FuseError
from .fuse import fuse_model, has_acb
from .mmdeploy_compat import torchscript_export_kwargs
from .staging import check_out_dir, staged_outputs

ACB_ONLY_KEYS = ('acb_mode', 'acb_gamma_init', 'deploy')
TOP_KEYS = ('include_top', 'num_classes', 'top_pool', 'upsample')
OUTPUT_NAMES = ('fused.pth', 'fused_config.py', 'fused.onnx')


def flatten_outputs(outputs) -> List[Tensor]:
    """The tensors of a ``mode='tensor'`` result (nested tuples/lists) in a
    fixed order."""
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    flat = []
    for item in outputs:
        flat.extend(flatten_outputs(item))
    return flat


def tensor_forward(model: nn.Module, x: Tensor):
    """``model(x, mode='tensor')`` with one data sample per image that
    describes ``x`` (two-stage detectors read image shapes from it even in
    tensor mode; single-stage ones ignore it)."""
    from mmdet.structures import DetDataSample
    h, w = x.shape[-2:]
    meta = dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta) for _ in range(x.shape[0])]
    return model(x, samples, mode='tensor')


class TensorModeWrapper(nn.Module):
    """``detector(x, mode='tensor')`` as a module returning a flat tuple (what
    ONNX export and FLOP counting need)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return tuple(flatten_outputs(tensor_forward(self.detector, x)))


def compare(outputs: Sequence[Tensor], reference: Sequence[Tensor]) -> Dict:
    """Max absolute error and the relative error ``max|a-b| / max|b|``."""
    if len(outputs) != len(reference):
        raise RuntimeError(f'{len(outputs)} outputs vs {len(reference)}')
    abs_err = max(float((a.double() - b.double()).abs().max())
                  for a, b in zip(outputs, reference))
    scale = max(float(b.double().abs().max()) for b in reference)
    return dict(max_abs_err=abs_err, max_rel_err=abs_err / max(scale, 1e-12))


def to_plain(obj):
    """Meta in plain Python types, so stock torch loads it with
    ``weights_only=True`` and no allow-list."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def stock_config(cfg: Config) -> Config:
    """The config of the fused detector: backbone ``type='ResNet'`` (for an
    ``ACNet`` backbone: the stock backbone it wraps), the ACB-only keys and
    acnet_backbone's ``custom_imports`` removed."""
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.backbone
    if backbone.get('include_top'):
        raise FuseError('the backbone has include_top=True: a detector '
                        'backbone returns stage features')
    if backbone.get('type') in WRAPPER_TYPES:  # ACNet: the stock type inside
        cfg.model.backbone = stock_backbone_config(backbone)
    else:
        backbone.type = 'ResNet'
        for key in ACB_ONLY_KEYS + TOP_KEYS:
            backbone.pop(key, None)
        backbone.init_cfg = None  # weights come from fused.pth
    imports = cfg.get('custom_imports')
    if imports:
        names = [n for n in imports.get('imports', [])
                 if n.split('.')[0] != 'acnet_backbone']
        if names:
            cfg.custom_imports = dict(imports, imports=names)
        else:
            cfg.pop('custom_imports')
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



def load_config(config: str) -> Config:
    if not os.path.isfile(config):
        raise FuseError(f'config not found: {config}')
    try:
        return Config.fromfile(config)
    except Exception as err:
        raise FuseError(f'cannot read config {config}: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])


def is_segmentor_config(cfg: Config) -> bool:
    """Whether ``cfg`` describes an mmseg segmentor (its default scope is
    ``mmseg`` or its model has a ``decode_head``)."""
    model = cfg.get('model') or {}
    return cfg.get('default_scope') == 'mmseg' or 'decode_head' in model


def load_checkpoint_strict(model: nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` into ``model`` safely and strictly."""
    if not os.path.isfile(checkpoint):
        raise FuseError(f'checkpoint not found: {checkpoint}')
    try:
        ckpt = safe_load(checkpoint)
    except UnsafeCheckpointError as err:
        raise FuseError(str(err))
    except Exception as err:
        raise FuseError(f'{checkpoint} is not a readable checkpoint '
                        f'({type(err).__name__})')
    if not isinstance(ckpt, dict):
        raise FuseError(f'{checkpoint} is not a checkpoint (it holds a '
                        f'{type(ckpt).__name__})')
    state = ckpt.get('state_dict', ckpt)
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise FuseError(f'{checkpoint} holds no state_dict of tensors')
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (first: {missing[0]})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (first: '
                         f'{unexpected[0]})')
        raise FuseError(f'checkpoint does not match the config: '
                        f'{", ".join(parts)} keys')
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise FuseError(f'checkpoint does not match the config: {bad[0]} is '
                        f'{tuple(state[bad[0]].shape)}, the model wants '
                        f'{tuple(own[bad[0]].shape)}')
    model.load_state_dict(state, strict=True)
    return ckpt


def preprocess(cfg: Config, model: nn.Module, path: str):
    """One image through the config's test pipeline (annotations not loaded)
    and the data preprocessor of ``model`` (a detector, or the preprocessor
    itself): ``(inputs [1, 3, H, W], data_samples)``, what the network
    sees."""
    from mmcv.transforms import Compose
    pipeline = [t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
                if 'Annotations' not in t['type']]
    data = Compose(pipeline)(dict(img_path=path, img_id=0))
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


def complexity(model: nn.Module, x: Tensor) -> Dict:
    from mmengine.analysis import FlopAnalyzer
    wrapper = TensorModeWrapper(model).eval()
    flops = FlopAnalyzer(wrapper, (x,))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    return dict(params=sum(p.numel() for p in model.parameters()),
                flops=int(flops.total()))


def export_onnx(model: nn.Module, x: Tensor, path: str, n_out: int,
                opset: Optional[int] = None) -> None:
    """Export ``model(x, mode='tensor')`` (``n_out`` flat output tensors)
    with dynamic H and W."""
    wrapper = TensorModeWrapper(model).eval()
    kwargs = dict(input_names=['input'],
                  output_names=[f'output{i}' for i in range(n_out)],
                  dynamic_axes={'input': {2: 'height', 3: 'width'}},
                  **torchscript_export_kwargs())
    if opset:
        kwargs['opset_version'] = opset
    with torch.no_grad():
        torch.onnx.export(wrapper, (x,), path, **kwargs)


def check_onnx(path: str, inputs: Sequence[Tensor],
               references: Sequence[Sequence[Tensor]]) -> List[Dict]:
    """Run the ONNX file in onnxruntime on each input and compare with
    ``references``, the torch model's flat outputs for the same inputs."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    results = []
    for x, ref in zip(inputs, references, strict=True):
        got = session.run(None, {'input': x.numpy()})
        err = compare([torch.from_numpy(g) for g in got], ref)
        results.append(dict(shape=list(x.shape[-2:]), **err))
    return results


def other_size_input(x: Tensor) -> Tensor:
    """A random input of another size than ``x`` (about half its height and
    three quarters of its width, multiples of 32, at least 64): the second
    input of an ONNX check with dynamic H and W."""
    h, w = x.shape[-2:]
    return torch.randn(1, 3, max(64, (h // 2) // 32 * 32),
                       max(64, (w * 3 // 4) // 32 * 32),
                       generator=torch.Generator().manual_seed(1))


def export_and_check_onnx(model: nn.Module, x: Tensor, path: str,
                          opset: Optional[int], rtol: float,
                          logger) -> List[Dict]:
    """Export ``model`` (tensor mode) to ``path`` and check the file in
    onnxruntime against torch on ``x`` and on a second input of another
    size (dynamic H and W).

    Returns:
        list[dict]: per input, its shape and the errors of :func:`compare`.

    Raises:
        FuseError: the export fails or a relative error exceeds ``rtol``.
    """
    with torch.no_grad():
        ref = flatten_outputs(tensor_forward(model, x))
    try:
        export_onnx(model, x, path, len(ref), opset)
    except Exception as err:
        raise FuseError(f'cannot export the fused model to ONNX: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    other = other_size_input(x)
    with torch.no_grad():
        other_ref = flatten_outputs(tensor_forward(model, other))
    results = check_onnx(path, [x, other], [ref, other_ref])
    for r in results:
        logger.info(f'onnxruntime vs torch at {r["shape"]}: max abs '
                    f'err {r["max_abs_err"]:.3g}, max rel err '
                    f'{r["max_rel_err"]:.3g}')
    worst = max(r['max_rel_err'] for r in results)
    if not worst <= rtol:
        raise FuseError(f'ONNX check failed: relative error '
                        f'{worst:.3g}; nothing written')
    return results


def fuse_checkpoint(config: str,
                    checkpoint: str,
                    out_dir: str,
                    onnx: bool = False,
                    shape: Tuple[int, int] = (800, 1333),
                    image: Optional[str] = None,
                    rtol: float = 1e-4,
                    opset: Optional[int] = None,
                    force: bool = False,
                    analyze: bool = True,
                    logger=None,
                    require_acb: bool = True) -> Dict:
    """Fuse a trained ACResNet detector into a stock mmdet ResNet detector.

    Args:
        config (str): the training config (its ``custom_imports`` apply).
        checkpoint (str): the trained checkpoint; loaded with
            ``weights_only=True`` and must match the config exactly.
        out_dir (str): where ``fused.pth``, ``fused_config.py`` and, with
            ``onnx``, ``fused.onnx`` go.
        onnx (bool): also export and check ONNX. Defaults to False.
        shape (tuple[int, int]): H, W of the random verification input.
            Defaults to (800, 1333).
        image (str, optional): verify on this image through the config's test
            pipeline instead. Defaults to None.
        rtol (float): largest allowed relative error. Defaults to 1e-4.
        opset (int, optional): ONNX opset. Defaults to torch's default.
        force (bool): overwrite existing outputs. Defaults to False.
        analyze (bool): count parameters and FLOPs. Defaults to True.
        logger: where progress goes (``MMLogger``); None: the current one.
        require_acb (bool): refuse a model without ACB ("nothing to fuse").
            False converts a plain (FCNResNet) detector to its stock form
            too, verified the same way. Defaults to True.

    Returns:
        dict: the report (errors, sizes, paths, seconds).

    Raises:
        FuseError: bad input or a failed verification; nothing written.
    """
    from mmengine.logging import MMLogger
    logger = logger or MMLogger.get_current_instance()
    start = time.perf_counter()
    names = list(OUTPUT_NAMES if onnx else OUTPUT_NAMES[:2])
    cfg = load_config(config)
    check_out_dir(out_dir, names, force)
    try:
        model = build_detector(cfg)
    except Exception as err:
        raise FuseError(f'cannot build the model of {config}: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if require_acb and not has_acb(model):
        raise FuseError(f'nothing to fuse: the model of {config} has no ACB')
    if onnx and hasattr(model, 'roi_head'):
        # mmdet 3.3's tensor-mode graph of a two-stage detector does not
        # trace to ONNX (its RPN decoding imports the removed mmdet.core, and
        # the traced RPN keeps other proposals than torch); mmdeploy rewrites
        # those steps
        raise FuseError(f'--onnx exports one-stage detectors; the model of '
                        f'{config} is two-stage: export it end to end with '
                        'tools/deploy.py')
    ckpt = load_checkpoint_strict(model, checkpoint)
    model.eval()
    fused = fuse_model(model)
    fused_cfg = stock_config(cfg)
    stock = build_detector(fused_cfg).eval()
    stock.load_state_dict(fused.state_dict(), strict=True)
    if any(type(m).__module__.startswith('acnet_backbone')
           for m in stock.modules()):
        raise RuntimeError('the fused detector still uses acnet_backbone')

    x = image_input(cfg, model, image) if image else torch.randn(
        1, 3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = flatten_outputs(tensor_forward(model, x))
        stock_out = flatten_outputs(tensor_forward(stock, x))
        err = compare(stock_out, ref)
    report = dict(config=config, checkpoint=checkpoint, input_shape=list(
        x.shape), rtol=rtol, **err)
    logger.info(f'fused vs unfused on {tuple(x.shape)}: max abs err '
                f'{err["max_abs_err"]:.3g}, max rel err '
                f'{err["max_rel_err"]:.3g}')
    if not err['max_rel_err'] <= rtol:
        raise FuseError(f'verification failed: relative error '
                        f'{err["max_rel_err"]:.3g} > {rtol:g}; nothing '
                        'written')
    if analyze:
        report['before'] = complexity(model, x)
        report['after'] = complexity(stock, x)
        logger.info(f'params {report["before"]["params"]:,} -> '
                    f'{report["after"]["params"]:,}; FLOPs '
                    f'{report["before"]["flops"] / 1e9:.2f} G -> '
                    f'{report["after"]["flops"] / 1e9:.2f} G')

    with staged_outputs(out_dir, names) as tmp:
        meta = to_plain(dict(ckpt.get('meta', {})))
        meta['acnet_backbone'] = to_plain(dict(
            fused_from=os.path.abspath(checkpoint),
            max_rel_err=err['max_rel_err']))
        torch.save(dict(meta=meta, state_dict=stock.state_dict()),
                   os.path.join(tmp, 'fused.pth'))
        fused_cfg.dump(os.path.join(tmp, 'fused_config.py'))
        if onnx:
            report['onnx'] = export_and_check_onnx(
                stock, x, os.path.join(tmp, 'fused.onnx'), opset,
                max(rtol, 1e-4), logger)
    report['outputs'] = [os.path.join(out_dir, n) for n in names]
    report['seconds'] = time.perf_counter() - start
    return report


def fuse_any_checkpoint(config: str,
                        checkpoint: str,
                        out_dir: str,
                        onnx: bool = False,
                        shape: Optional[Tuple[int, int]] = None,
                        image: Optional[str] = None,
                        num_images: int = 0,
                        **kwargs) -> Dict:
    """``tools/fuse.py``'s one call: a detector through
    :func:`fuse_checkpoint` (verified on ``image`` or a random ``shape``
    input, default 800x1333), an mmseg segmentor through
    :func:`acnet_backbone.seg.deploy.fuse_segmentor_checkpoint` (verified on
    a random ``shape`` input, default 512x512, and on ``num_images`` test
    images, whose mIoU it reports). ``kwargs``: ``rtol``, ``opset``,
    ``force``, ``logger``, and ``analyze`` (detectors only).

    Raises:
        FuseError: bad input (also an option of the other kind of model) or
            a failed check; nothing written.
    """
    cfg = load_config(config)
    if not is_segmentor_config(cfg):
        if num_images:
            raise FuseError('--num-images is for segmentors; a detector is '
                            'verified on --image or a random input')
        return fuse_checkpoint(config, checkpoint, out_dir, onnx=onnx,
                               shape=shape or (800, 1333), image=image,
                               **kwargs)
    if image is not None:
        raise FuseError('--image is for detectors; a segmentor is verified '
                        'on --num-images test images')
    kwargs.pop('analyze', None)
    from ..seg.deploy import fuse_segmentor_checkpoint
    return fuse_segmentor_checkpoint(config, checkpoint, out_dir, onnx=onnx,
                                     shape=shape or (512, 512),
                                     num_images=num_images, **kwargs)
