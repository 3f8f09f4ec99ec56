"""Whole-detector deployment: load a trained ACResNet detector strictly and
safely, fuse it, verify it numerically, write stock-mmdet files, export ONNX.

Everything is verified before anything is written, and every output is
written to a temporary file in the output folder and renamed at the end.
"""
import copy
import os
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..safe_load import UnsafeCheckpointError, safe_load
from .fuse import fuse_model, has_acb

ACB_ONLY_KEYS = ('acb_mode', 'acb_gamma_init', 'deploy')
TOP_KEYS = ('include_top', 'num_classes', 'top_pool', 'upsample')
OUTPUT_NAMES = ('fused.pth', 'fused_config.py', 'fused.onnx')


class FuseError(RuntimeError):
    """A problem with the user's input: reported in one line, nothing
    written."""


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
        return tuple(flatten_outputs(self.detector(x, mode='tensor')))


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
    """The config of the fused detector: backbone ``type='ResNet'``, the
    ACB-only keys and acnet_backbone's ``custom_imports`` removed."""
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.backbone
    if backbone.get('include_top'):
        raise FuseError('the backbone has include_top=True: a detector '
                        'backbone returns stage features')
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


def _build_detector(cfg: Config) -> nn.Module:
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


def image_input(cfg: Config, model: nn.Module, image: str) -> Tensor:
    """A real image through the config's test pipeline and the model's data
    preprocessor: the ``[1, 3, H, W]`` tensor the network sees."""
    from mmcv.transforms import Compose
    if not os.path.isfile(image):
        raise FuseError(f'image not found: {image}')
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline = [t for t in pipeline if 'Annotations' not in t['type']]
    data = Compose(pipeline)(dict(img_path=image, img_id=0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    return batch['inputs']


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
                  dynamo=False)
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


def _check_out_dir(out_dir: str, names: Sequence[str], force: bool) -> None:
    """Refuse early (before any work) an output folder we could not write or
    that holds outputs already; creates nothing."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise FuseError(f'output folder {out_dir} is a file')
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise FuseError(f'output folder {out_dir} is not writable')
        existing = [n for n in names
                    if os.path.exists(os.path.join(out_dir, n))]
        if existing and not force:
            raise FuseError(f'{os.path.join(out_dir, existing[0])} exists; '
                            'pass --force to overwrite')
        return
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise FuseError(f'output folder {out_dir} cannot be created: {parent} '
                        'is not a writable folder')


def _staging_dir(out_dir: str) -> str:
    try:
        os.makedirs(out_dir, exist_ok=True)
        return tempfile.mkdtemp(dir=out_dir, prefix='.fuse-')
    except OSError as err:
        raise FuseError(f'output folder {out_dir} is not writable '
                        f'({err.strerror})')


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
    _check_out_dir(out_dir, names, force)
    try:
        model = _build_detector(cfg)
    except Exception as err:
        raise FuseError(f'cannot build the model of {config}: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if require_acb and not has_acb(model):
        raise FuseError(f'nothing to fuse: the model of {config} has no ACB')
    ckpt = load_checkpoint_strict(model, checkpoint)
    model.eval()
    fused = fuse_model(model)
    fused_cfg = stock_config(cfg)
    stock = _build_detector(fused_cfg).eval()
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

    created = not os.path.exists(out_dir)
    tmp = _staging_dir(out_dir)
    done = False
    try:
        meta = to_plain(dict(ckpt.get('meta', {})))
        meta['acnet_backbone'] = to_plain(dict(
            fused_from=os.path.abspath(checkpoint),
            max_rel_err=err['max_rel_err']))
        torch.save(dict(meta=meta, state_dict=stock.state_dict()),
                   os.path.join(tmp, 'fused.pth'))
        fused_cfg.dump(os.path.join(tmp, 'fused_config.py'))
        if onnx:
            onnx_path = os.path.join(tmp, 'fused.onnx')
            export_onnx(stock, x, onnx_path, len(stock_out), opset)
            h, w = x.shape[-2:]
            other = torch.randn(1, 3, max(64, (h // 2) // 32 * 32),
                                max(64, (w * 3 // 4) // 32 * 32),
                                generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                other_out = flatten_outputs(stock(other, mode='tensor'))
            report['onnx'] = check_onnx(onnx_path, [x, other],
                                        [stock_out, other_out])
            for r in report['onnx']:
                logger.info(f'onnxruntime vs torch at {r["shape"]}: max abs '
                            f'err {r["max_abs_err"]:.3g}, max rel err '
                            f'{r["max_rel_err"]:.3g}')
            worst = max(r['max_rel_err'] for r in report['onnx'])
            if not worst <= max(rtol, 1e-4):
                raise FuseError(f'ONNX check failed: relative error '
                                f'{worst:.3g}; nothing written')
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        done = True
    finally:
        for leftover in os.listdir(tmp):
            os.remove(os.path.join(tmp, leftover))
        os.rmdir(tmp)
        if created and not done and not os.listdir(out_dir):
            os.rmdir(out_dir)  # leave no trace of a failed run
    report['outputs'] = [os.path.join(out_dir, n) for n in names]
    report['seconds'] = time.perf_counter() - start
    return report
