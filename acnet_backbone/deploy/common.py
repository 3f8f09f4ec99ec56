"""The task-agnostic parts of deployment, shared by the detection and the
segmentation adapters (:mod:`.tasks`) and the pipeline (:mod:`.core`):
reading a config, strict checkpoint loading (the fit check is
:func:`acnet_backbone.state_fit.state_fit`), the stock form of a
backbone config, numerical comparison, plain-Python meta and the one ONNX
export.
"""
import copy
import os
import statistics
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..backbones.acnet_wrapper import WRAPPER_TYPES, stock_backbone_config
from ..errors import FuseError
from ..safe_load import UnsafeCheckpointError, safe_load
from ..state_fit import state_fit
from .mmdeploy_compat import torchscript_export_kwargs

ACB_ONLY_KEYS = ('acb_mode', 'acb_gamma_init', 'acb_norm_eval',
                 'stage_with_acb', 'deploy')
TOP_KEYS = ('include_top', 'num_classes', 'top_pool', 'upsample')
OUTPUT_NAMES = ('fused.pth', 'fused_config.py', 'fused.onnx')
# backbones of this package that are a stock mmdet ResNet once fused
RESNET_TYPES = ('ACResNet', 'FCNResNet')


def first_line(prefix: str, err: BaseException) -> str:
    """``prefix: ErrorType: message``, cut to its first line."""
    return f'{prefix}: {type(err).__name__}: {err}'.splitlines()[0]


def load_config(config: str) -> Config:
    """Read ``config``.

    Raises:
        FuseError: the file is missing or does not parse (one line).
    """
    if not os.path.isfile(config):
        raise FuseError(f'config not found: {config}')
    try:
        return Config.fromfile(config)
    except Exception as err:
        raise FuseError(first_line(f'cannot read config {config}', err))


def is_segmentor_config(cfg: Config) -> bool:
    """Whether ``cfg`` describes an mmseg segmentor (its default scope is
    ``mmseg`` or its model has a ``decode_head``)."""
    model = cfg.get('model') or {}
    return cfg.get('default_scope') == 'mmseg' or 'decode_head' in model


def read_state_dict(checkpoint: str) -> tuple:
    """``(checkpoint dict, state_dict)`` of a file, loaded with
    ``weights_only=True``; a DataParallel ``module.`` prefix is dropped.

    Raises:
        FuseError: missing, unsafe, unreadable or holding no tensors.
    """
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
    return ckpt, {k[7:] if k.startswith('module.') else k: v
                  for k, v in state.items()}


def load_checkpoint_strict(model: nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` into ``model`` safely and strictly.

    Returns:
        dict: the checkpoint (its ``meta`` goes into the fused file).

    Raises:
        FuseError: the file is not a safe checkpoint or does not fit.
    """
    ckpt, state = read_state_dict(checkpoint)
    own = model.state_dict()
    fit = state_fit(own, state)
    parts = [f'{len(fit[k])} {k} (first: {fit[k][0]})'
             for k in ('missing', 'unexpected') if fit[k]]
    if parts:
        raise FuseError(f'checkpoint does not match the config: '
                        f'{", ".join(parts)} keys')
    if fit['mismatched']:
        bad = fit['mismatched'][0]
        raise FuseError(f'checkpoint does not match the config: {bad} is '
                        f'{tuple(state[bad].shape)}, the model wants '
                        f'{tuple(own[bad].shape)}')
    model.load_state_dict(state, strict=True)
    return ckpt


def stock_backbone(backbone: dict, resnet_type: str, task: str) -> dict:
    """The stock form of a backbone config, the same for every task.

    ``ACNet``: the stock backbone it wraps, its type as written (built in
    the default scope as in training); ``ACResNet`` / ``FCNResNet``:
    ``resnet_type`` (mmdet's ``ResNet``) without the ACB-only and top keys.
    ``init_cfg`` is cleared (weights come from ``fused.pth``).

    Raises:
        FuseError: any other backbone (nothing of this package to fuse, e.g.
            a plain ResNeXt), or ``include_top=True``.
    """
    backbone = copy.deepcopy(backbone)
    kind = str(backbone.get('type', '')).split('.')[-1]
    if backbone.get('type') in WRAPPER_TYPES or kind == 'ACNet':
        return stock_backbone_config(dict(backbone, type='ACNet'))
    if kind not in RESNET_TYPES:
        raise FuseError(f'backbone {backbone.get("type")!r} is not an '
                        'acnet_backbone backbone (ACResNet, FCNResNet, '
                        'ACNet): nothing to fuse')
    if backbone.get('include_top'):
        raise FuseError(f'the backbone has include_top=True: a {task} '
                        'backbone returns stage features')
    backbone['type'] = resnet_type
    for key in ACB_ONLY_KEYS + TOP_KEYS:
        backbone.pop(key, None)
    backbone['init_cfg'] = None
    return backbone


def without_own_imports(cfg: Config, keep: Sequence[str] = ()) -> None:
    """Drop ``acnet_backbone`` from ``cfg.custom_imports`` in place, adding
    ``keep`` (modules the stock model still needs); no imports left: the
    key goes."""
    imports = [n for n in (cfg.get('custom_imports') or {}).get('imports', [])
               if n.split('.')[0] != 'acnet_backbone'] + list(keep)
    if imports:
        cfg.custom_imports = dict(cfg.get('custom_imports') or {},
                                  imports=imports)
    else:
        cfg.pop('custom_imports', None)


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


def random_input(shape, seed: int = 0) -> Tensor:
    """A seeded random ``[1, 3, H, W]`` input."""
    return torch.randn(1, 3, *shape,
                       generator=torch.Generator().manual_seed(seed))


def other_size_input(x: Tensor) -> Tensor:
    """A random input of another size than ``x`` (about half its height and
    three quarters of its width, multiples of 32, at least 64): the second
    input of an ONNX check with dynamic H and W."""
    h, w = x.shape[-2:]
    return random_input((max(64, (h // 2) // 32 * 32),
                         max(64, (w * 3 // 4) // 32 * 32)), seed=1)


def export_onnx(module: nn.Module, x: Tensor, path: str,
                output_names: Sequence[str], dynamic_axes: Dict,
                opset: Optional[int] = None) -> None:
    """The package's one ONNX export of a tensor module (TorchScript
    exporter, input ``input``).

    Raises:
        FuseError: the export fails (one line).
    """
    kwargs = dict(input_names=['input'], output_names=list(output_names),
                  dynamic_axes=dynamic_axes, **torchscript_export_kwargs())
    if opset:
        kwargs['opset_version'] = opset
    try:
        with torch.no_grad():
            torch.onnx.export(module.eval(), (x, ), path, **kwargs)
    except Exception as err:
        raise FuseError(first_line('cannot export the fused model to ONNX',
                                   err))


def write_fused(tmp: str, ckpt: dict, checkpoint: str, stock: nn.Module,
                stock_cfg: Config, max_rel_err: float) -> None:
    """``fused.pth`` (state_dict + plain-Python meta) and
    ``fused_config.py`` into the staging folder ``tmp``."""
    meta = to_plain(dict(ckpt.get('meta', {})))
    meta['acnet_backbone'] = to_plain(dict(
        fused_from=os.path.abspath(checkpoint), max_rel_err=max_rel_err))
    torch.save(dict(meta=meta, state_dict=stock.state_dict()),
               os.path.join(tmp, 'fused.pth'))
    stock_cfg.dump(os.path.join(tmp, 'fused_config.py'))


def median_ms(times: Sequence[float]) -> float:
    """The median of per-call times in seconds, in milliseconds (3
    decimals): the latency the deploy reports give."""
    return round(1000 * statistics.median(times), 3)
