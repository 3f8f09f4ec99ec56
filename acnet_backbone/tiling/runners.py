"""Detectors that take image patches and return boxes in patch pixels, in
every runtime the deploy path ships: torch (a training config and its
checkpoint, unfused or fused, or a deploy folder's ``fused.pth``),
onnxruntime FP32 / INT8 and OpenVINO FP32 / BF16 / INT8 (a
``tools/deploy.py`` folder's ``end2end.onnx`` / ``end2end_int8.onnx``).

The pieces are the deploy path's own: the config's test pipeline
(:func:`~acnet_backbone.deploy.tasks.detection.test_pipeline`, the image
read from an array) and data preprocessor make the network's input, the
sessions come from the deploy backends' one interface
(:func:`~acnet_backbone.deploy.backends.backend_for`: every registered
runtime, ``ort`` naming onnxruntime), and the stock detector of a deploy
folder from :func:`~acnet_backbone.deploy.export.load_stock_detector`.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..deploy.backends import all_backends
from ..errors import InputError

# the deploy backends' names here (onnxruntime's is short)
_SHORT = dict(onnxruntime='ort')
PRECISIONS = dict(torch=('fp32', ), **{
    _SHORT.get(b.name, b.name): tuple(b.precisions) for b in all_backends()})
BACKENDS = tuple(PRECISIONS)
# the files of a deploy folder each (backend, precision) needs
_FILES = dict(torch='fused.pth', fp32='end2end.onnx', bf16='end2end.onnx',
              int8='end2end_int8.onnx')
Detections = Tuple[np.ndarray, np.ndarray]


def check_backend(backend: str, precision: str) -> str:
    """The backend's short name (``onnxruntime`` is ``ort``), checked with
    its precision.

    Raises:
        InputError: an unknown backend, or a precision it does not run.
    """
    backend = _SHORT.get(backend, backend)
    if backend not in BACKENDS:
        raise InputError(f'unknown `backend` {backend!r} (choose from '
                         f'{", ".join(BACKENDS)})')
    if precision not in PRECISIONS[backend]:
        raise InputError(f'`precision` {precision}: {backend} runs '
                         f'{", ".join(PRECISIONS[backend])}')
    return backend


class PatchPreprocessor:
    """BGR ``uint8`` patches -> the network's input batch, as the config's
    test pipeline (a ``Resize`` in it is kept) and data preprocessor make
    it.

    Args:
        cfg (Config): the detector's config.
        data_preprocessor (nn.Module, optional): the detector's own; None:
            built from ``cfg.model.data_preprocessor``.
    """

    def __init__(self, cfg, data_preprocessor=None) -> None:
        from mmcv.transforms import Compose
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules

        from ..deploy.tasks.detection import test_pipeline
        register_all_modules(init_default_scope=True)
        self.pipeline = Compose(test_pipeline(cfg, from_array=True))
        self.data_preprocessor = data_preprocessor or MODELS.build(
            cfg.model.data_preprocessor)

    def __call__(self, patches: Sequence[np.ndarray]):
        """``(inputs [B, 3, H, W], data_samples)`` of the patches (each
        sample's ``scale_factor`` maps input pixels back to the patch)."""
        import torch
        data = [self.pipeline(dict(img=p, img_id=i))
                for i, p in enumerate(patches)]
        with torch.no_grad():
            batch = self.data_preprocessor(dict(
                inputs=[d['inputs'] for d in data],
                data_samples=[d['data_samples'] for d in data]), False)
        return batch['inputs'], batch['data_samples']


class SessionRunner:
    """An end-to-end file's session (onnxruntime, or OpenVINO's with the
    same ``run`` call): ``[B, 3, H, W]`` -> per image ``(dets [K, 5],
    labels [K])`` in input pixels, the padding rows (score 0) dropped."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, inputs, samples) -> List[Detections]:
        dets, labels = self.session.run(['dets', 'labels'],
                                        {'input': inputs.numpy()})
        out = []
        for d, lab in zip(dets, labels):
            keep = d[:, 4] > 0
            out.append((d[keep], lab[keep]))
        return out


class TorchRunner:
    """An mmdet detector in eval mode: ``model.predict`` on the batch,
    boxes in input pixels."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, inputs, samples) -> List[Detections]:
        import torch
        with torch.no_grad():
            results = self.model.predict(inputs, samples, rescale=False)
        out = []
        for r in results:
            inst = r.pred_instances
            out.append((torch.cat([inst.bboxes, inst.scores[:, None]],
                                  1).numpy(), inst.labels.numpy()))
        return out


class PatchDetector:
    """Patches in, detections in patch pixels out, with the time spent in
    each step.

    Args:
        preprocess (PatchPreprocessor): makes the input batch.
        runner (callable): ``runner(inputs, samples)`` -> per image
            ``(dets, labels)`` in input pixels.
        classes (list[str]): the class names.
        nms_iou (float): the detector's own NMS IoU threshold (the merge
            across patches uses it by default).
        description (dict): what runs (backend, precision, files, ...).

    Attributes:
        seconds (dict): ``preprocess``, ``network`` and ``postprocess``
            seconds summed over every call since :meth:`reset`.
    """

    def __init__(self, preprocess: PatchPreprocessor, runner,
                 classes: Sequence[str], nms_iou: float,
                 description: Dict) -> None:
        self.preprocess, self.runner = preprocess, runner
        self.classes, self.nms_iou = list(classes), float(nms_iou)
        self.description = description
        self.reset()

    def reset(self) -> None:
        """Zero :attr:`seconds`."""
        self.seconds = dict(preprocess=0.0, network=0.0, postprocess=0.0)

    def __call__(self, patches: Sequence[np.ndarray]) -> List[Detections]:
        """Detections of each BGR patch ``[h, w, 3]`` in its pixels, clipped
        to it."""
        from .layout import clip_to_patch
        t0 = time.perf_counter()
        inputs, samples = self.preprocess(patches)
        t1 = time.perf_counter()
        raw = self.runner(inputs, samples)
        t2 = time.perf_counter()
        out = []
        for (dets, labels), sample, patch in zip(raw, samples, patches):
            dets = np.array(dets, np.float32).reshape(-1, 5)
            sx, sy = sample.metainfo.get('scale_factor', (1.0, 1.0))
            dets[:, [0, 2]] /= sx
            dets[:, [1, 3]] /= sy
            out.append(clip_to_patch(dets, labels, patch.shape[1],
                                     patch.shape[0]))
        t3 = time.perf_counter()
        for key, dt in (('preprocess', t1 - t0), ('network', t2 - t1),
                        ('postprocess', t3 - t2)):
            self.seconds[key] += dt
        return out


def config_classes(cfg) -> List[str]:
    """The class names of a detector config (its test set's metainfo), or
    ``class_<i>`` when they do not match the head's ``num_classes``."""
    head = cfg.model.get('bbox_head', {}) or {}
    n = head.get('num_classes')
    meta = cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'metainfo') or {}
    classes = list(meta.get('classes', ()))
    if n is not None and len(classes) != n:
        classes = [f'class_{i}' for i in range(n)]
    return classes


def nms_iou_of(cfg) -> float:
    """The IoU threshold of the detector's own NMS (``test_cfg.nms``)."""
    test_cfg = cfg.model.get('test_cfg', {}) or {}
    test_cfg = test_cfg.get('rcnn', test_cfg)
    return float((test_cfg.get('nms') or {}).get('iou_threshold', 0.5))


def deploy_files(model_dir: str, backend: str, precision: str) -> Dict:
    """The files of a deploy folder that ``backend`` / ``precision`` need:
    ``config`` (``fused_config.py``) and ``model`` (``fused.pth`` for
    torch, else ``end2end.onnx`` / ``end2end_int8.onnx``).

    Raises:
        InputError: the folder or one of the files is missing.
    """
    if not osp.isdir(model_dir):
        raise InputError(f'deploy folder not found: {model_dir}')
    name = _FILES['torch' if backend == 'torch' else precision]
    files = dict(config=osp.join(model_dir, 'fused_config.py'),
                 model=osp.join(model_dir, name))
    for path in files.values():
        if not osp.isfile(path):
            hint = (' (tools/deploy.py --int8 writes it)'
                    if path.endswith('_int8.onnx') else '')
            raise InputError(f'{model_dir} is not a complete deploy folder '
                             f'of tools/deploy.py: {osp.basename(path)} is '
                             f'missing{hint}')
    return files


def _session(path: str, backend: str, precision: str,
             threads: Optional[int]):
    """A session of a deployed file through the backend interface
    (:mod:`acnet_backbone.deploy.backends`); ``ort`` is onnxruntime."""
    from ..deploy.backends import backend_for
    from ..deploy.export import custom_ops_of
    runtime = backend_for({v: k for k, v in _SHORT.items()}.get(backend,
                                                                backend))
    if precision == 'bf16':  # refused, never emulated, on a CPU without it
        runtime.check_precisions([precision], runtime.capabilities())
    try:
        _, ops_lib = custom_ops_of(path)
        return runtime.session(path, precision, threads, ops_lib)
    except InputError:
        raise
    except Exception as err:  # a runtime's own errors are no InputError
        raise InputError(f'{runtime.display} cannot load {path}: '
                         f'{str(err).splitlines()[0]}') from None


def _torch_model(config: str, checkpoint: str):
    """The detector of a training (or fused) config with its checkpoint
    loaded strictly, in eval mode."""
    from ..deploy.common import load_checkpoint_strict, load_config
    from ..deploy.tasks.detection import build_detector
    cfg = load_config(config)
    if 'bbox_head' not in cfg.model and 'roi_head' not in cfg.model:
        raise InputError(f'{config} is not a detector config')
    model = build_detector(cfg)
    load_checkpoint_strict(model, checkpoint)
    return cfg, model.eval()


def load_patch_detector(model_dir: Optional[str] = None,
                        config: Optional[str] = None,
                        checkpoint: Optional[str] = None,
                        backend: str = 'torch',
                        precision: str = 'fp32',
                        threads: Optional[int] = None) -> PatchDetector:
    """A :class:`PatchDetector` of a deploy folder or of a config and its
    checkpoint.

    Args:
        model_dir (str, optional): a ``tools/deploy.py`` output folder.
        config (str, optional): a detector config (training or
            ``fused_config.py``), with ``checkpoint``; torch only.
        checkpoint (str, optional): its checkpoint (unfused or fused).
        backend (str): ``torch``, ``ort`` (onnxruntime) or ``openvino``.
            Defaults to ``'torch'``.
        precision (str): ``fp32``; ``int8`` (ort, openvino: the INT8 file);
            ``bf16`` (openvino, on a CPU with native BF16). Defaults to
            ``'fp32'``.
        threads (int, optional): the runtime's threads (torch: its
            intra-op threads, set for the process); None: its choice.

    Raises:
        InputError: neither or both of ``model_dir`` and ``config``, a
            missing file, a bad backend / precision, a checkpoint that does
            not fit, a runtime that cannot load the file.
    """
    import torch

    from ..deploy.common import load_config
    if (model_dir is None) == (config is None):
        raise InputError('give a deploy folder (`model_dir`) or a config and '
                         'its checkpoint (`config` `checkpoint`), not both')
    if config is not None and checkpoint is None:
        raise InputError('`config` needs its `checkpoint`')
    backend = check_backend(backend, precision)
    if threads is not None and threads < 1:
        raise InputError('`threads` must be at least 1')
    if threads:
        torch.set_num_threads(threads)
    if config is not None:
        if backend != 'torch':
            raise InputError(f'`backend` {backend} runs a deploy folder '
                             '(`model_dir`, written by tools/deploy.py); a '
                             'config and its checkpoint run in torch')
        cfg, model = _torch_model(config, checkpoint)
        files = dict(config=config, model=checkpoint)
    else:
        files = deploy_files(model_dir, backend, precision)
        cfg = load_config(files['config'])
        model = None
        if backend == 'torch':
            from ..deploy.export import load_stock_detector
            model = load_stock_detector(cfg, files['model'])
    if model is not None:
        runner, pre = TorchRunner(model), PatchPreprocessor(
            cfg, model.data_preprocessor)
    else:
        runner = SessionRunner(_session(files['model'], backend, precision,
                                        threads))
        pre = PatchPreprocessor(cfg)
    ran = getattr(runner, 'session', None)
    description = dict(
        backend=backend, precision=precision, threads=threads,
        files={k: os.path.relpath(v) for k, v in files.items()},
        backbone=cfg.model.backbone.get('type'),
        compiled=getattr(ran, 'ran', None))
    return PatchDetector(pre, runner, config_classes(cfg), nms_iou_of(cfg),
                         description)
