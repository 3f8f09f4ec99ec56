"""End-to-end deployment: a trained (ACResNet) detector to an ONNX file that
takes the preprocessed image tensor and returns boxes, through mmdeploy.

The detector is first fused and verified by :func:`fuse_checkpoint` (the
code behind ``tools/fuse.py``); mmdeploy then exports the *fused, stock*
detector (``fused_config.py`` + ``fused.pth``: no plugin involved) with its
ObjectDetection task and onnxruntime backend, decoding and NMS inside the
graph. The ONNX file is checked in a plain onnxruntime session against the
torch detector before anything is written; ``evaluate=True`` adds the bbox
mAP of both on the config's test set and their per-image latency.

File contract (``end2end.onnx``): input ``input`` = the ``[1, 3, H, W]``
float32 tensor after the config's data preprocessor (H, W dynamic); outputs
``dets`` ``[1, K, 5]`` (x1, y1, x2, y2, score in input pixels, boxes clipped
to the input tensor's extent) and ``labels`` ``[1, K]`` (int64). Unlike
mmdet, mmdeploy's graph keeps boxes that clipping made flat (zero width or
height, ``min_bbox_size``); they overlap nothing, drop them if they bother
you.
"""
import copy
import json
import os
import shutil
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from .checkpoint import (FuseError, _build_detector, _check_out_dir,
                         _staging_dir, fuse_checkpoint, load_config)
from .mmdeploy_compat import mmdeploy_export_compat, ort_custom_ops_library

DEPLOY_OUTPUTS = ('end2end.onnx', 'deploy_config.py', 'fused.pth',
                  'fused_config.py', 'deploy_report.json')
# box and score tolerances of the onnxruntime-vs-torch check (float32 maps
# through the same decoding: errors seen here are about 1e-5 px)
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-3


def deploy_config(model_cfg: Config, opset: int = 11) -> Config:
    """mmdeploy's deploy config for an end-to-end onnxruntime detector with
    dynamic H and W; NMS settings follow the model's ``test_cfg`` (which
    mmdeploy reads first), the rest are mmdeploy's detection defaults."""
    test_cfg = model_cfg.model.get('test_cfg', {}) or {}
    # two-stage detectors keep their NMS settings under rcnn
    test_cfg = test_cfg.get('rcnn', test_cfg)
    keep = int(test_cfg.get('max_per_img', 100))
    return Config(dict(
        onnx_config=dict(
            type='onnx', export_params=True, keep_initializers_as_inputs=False,
            opset_version=opset, save_file='end2end.onnx',
            input_names=['input'], output_names=['dets', 'labels'],
            input_shape=None, optimize=False,
            dynamic_axes=dict(
                input={0: 'batch', 2: 'height', 3: 'width'},
                dets={0: 'batch', 1: 'num_dets'},
                labels={0: 'batch', 1: 'num_dets'})),
        codebase_config=dict(
            type='mmdet', task='ObjectDetection', model_type='end2end',
            post_processing=dict(
                score_threshold=float(test_cfg.get('score_thr', 0.05)),
                confidence_threshold=0.005,
                iou_threshold=float(test_cfg.get('nms', {}).get(
                    'iou_threshold', 0.5)),
                max_output_boxes_per_class=max(200, keep),
                pre_top_k=5000, keep_top_k=keep, background_label_id=-1)),
        backend_config=dict(type='onnxruntime')))


def needs_custom_ops(onnx_path: str) -> List[str]:
    """Op types of the file outside ONNX's own domains (they need mmdeploy's
    onnxruntime op library)."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return sorted({n.op_type for n in model.graph.node
                   if n.domain not in ('', 'ai.onnx')})


def ort_session(onnx_path: str, custom_ops: Optional[str] = None):
    """A plain onnxruntime CPU session; ``custom_ops``: a library to
    register first (two-stage detectors)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if custom_ops:
        options.register_custom_ops_library(custom_ops)
    return ort.InferenceSession(onnx_path, options,
                                providers=['CPUExecutionProvider'])


def dataset_images(cfg: Config, limit: Optional[int]) -> List[str]:
    """Paths of the first ``limit`` images of the config's test set."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.pipeline = []
    ds_cfg.lazy_init = False
    dataset = DATASETS.build(ds_cfg)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return [dataset.get_data_info(i)['img_path'] for i in range(n)]


def preprocess(cfg: Config, model, path: str):
    """One image through the test pipeline (no annotations) and the model's
    data preprocessor: ``(inputs [1, 3, H, W], data_samples)``."""
    from mmcv.transforms import Compose
    pipeline = [t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
                if 'Annotations' not in t['type']]
    data = Compose(pipeline)(dict(img_path=path, img_id=0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    return batch['inputs'], batch['data_samples']


def torch_detections(model, inputs, samples) -> Tuple[np.ndarray, np.ndarray]:
    """The torch detector's ``(dets [K, 5], labels [K])`` in input pixels,
    with boxes clipped to the input tensor (as the exported graph does)."""
    samples = copy.deepcopy(samples)
    for s in samples:
        s.set_metainfo(dict(img_shape=tuple(inputs.shape[-2:])))
    with torch.no_grad():
        result = model.predict(inputs, samples, rescale=False)[0]
    inst = result.pred_instances
    dets = torch.cat([inst.bboxes, inst.scores[:, None]], 1)
    return dets.numpy(), inst.labels.numpy()


def match_detections(ref: Tuple[np.ndarray, np.ndarray],
                     got: Tuple[np.ndarray, np.ndarray],
                     min_bbox_size: float = 0,
                     score_thr: float = 0.0,
                     max_per_img: Optional[int] = None) -> Dict:
    """Compare torch's detections ``ref`` with the ONNX file's ``got``: the
    count, the largest box and score differences and whether the labels
    agree.

    mmdet drops boxes no wider or taller than ``min_bbox_size`` (its
    ``test_cfg``; boxes clipped flat at the image border) and mmdeploy's
    graph does not: those ONNX boxes are counted (``n_degenerate``) and left
    out, and so are detections whose score lies within ``SCORE_ATOL`` of a
    cut-off, where a near-tie may go either way: ``score_thr``, and the
    lowest score of a list that ``max_per_img`` truncated.
    """
    (rd, rl), (gd, gl) = ref, got
    floor = score_thr
    for d in (rd, gd):  # a truncated list: its last score is a cut-off
        if max_per_img and len(d) >= max_per_img:
            floor = max(floor, float(d[:, 4].min()))
    floor += SCORE_ATOL
    n_degenerate = 0
    if min_bbox_size is not None and min_bbox_size >= 0 and len(gd):
        keep = ((gd[:, 2] - gd[:, 0]) > min_bbox_size) & (
            (gd[:, 3] - gd[:, 1]) > min_bbox_size)
        n_degenerate = int((~keep).sum())
        gd, gl = gd[keep], gl[keep]
    ro, go = np.argsort(-rd[:, 4], kind='stable'), np.argsort(
        -gd[:, 4], kind='stable')
    rd, rl, gd, gl = rd[ro], rl[ro], gd[go], gl[go]
    rk, gk = rd[:, 4] > floor, gd[:, 4] > floor
    rd, rl, gd, gl = rd[rk], rl[rk], gd[gk], gl[gk]
    out = dict(n_torch=int(len(rd)), n_onnx=int(len(gd)), max_box_err=0.0,
               max_score_err=0.0, labels_equal=True,
               n_degenerate=n_degenerate)
    if len(rd) != len(gd):
        return out
    if len(rd):
        # within a group of equal scores the order is arbitrary: match each
        # torch box to the nearest ONNX box of the same label
        used = np.zeros(len(gd), bool)
        for i in range(len(rd)):
            cand = np.where(~used & (gl == rl[i]) & (np.abs(
                gd[:, 4] - rd[i, 4]) <= SCORE_ATOL))[0]
            if not len(cand):
                out['labels_equal'] = False
                return out
            errs = np.abs(gd[cand, :4] - rd[i, :4]).max(1)
            j = cand[int(errs.argmin())]
            used[j] = True
            out['max_box_err'] = max(out['max_box_err'], float(errs.min()))
            out['max_score_err'] = max(out['max_score_err'],
                                       float(abs(gd[j, 4] - rd[i, 4])))
    return out


def _median_ms(times: Sequence[float]) -> float:
    return round(1000 * statistics.median(times), 3)


def evaluate_torch(cfg_path: str, checkpoint: str, work_dir: str) -> Dict:
    """COCO metrics of a (stock) detector on its config's test set, with
    mmengine's Runner."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.pop('visualizer', None)
    return Runner.from_cfg(cfg).test()


def evaluate_onnx(cfg_path: str, deploy_cfg: Config, onnx_path: str,
                  work_dir: str) -> Dict:
    """COCO metrics of the end-to-end ONNX file on the test set, through
    mmdeploy's task processor (its onnxruntime backend model)."""
    from mmdeploy.apis import build_task_processor
    model_cfg = Config.fromfile(cfg_path)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    model = processor.build_backend_model(
        [onnx_path], processor.update_data_preprocessor)
    runner = processor.build_test_runner(model, work_dir)
    return runner.test()


def deploy_checkpoint(config: str,
                      checkpoint: str,
                      out_dir: str,
                      evaluate: bool = False,
                      shape: Optional[Tuple[int, int]] = None,
                      num_images: int = 20,
                      rtol: float = 1e-4,
                      opset: int = 11,
                      force: bool = False,
                      logger=None,
                      images: Optional[Sequence[str]] = None) -> Dict:
    """Fuse, verify and export a detector end to end through mmdeploy.

    Args:
        config (str): the training config.
        checkpoint (str): the trained checkpoint (loaded safely, strictly).
        out_dir (str): where ``end2end.onnx``, ``deploy_config.py`` (the
            mmdeploy config used), ``fused.pth``, ``fused_config.py`` and
            ``deploy_report.json`` go.
        evaluate (bool): bbox mAP of torch and ONNX on the test set, and
            per-image latency. Defaults to False.
        shape (tuple[int, int], optional): H, W of the random fusion check
            input; None: the first test image through the test pipeline.
        num_images (int): test images for the onnxruntime-vs-torch check and
            the latency. Defaults to 20.
        rtol (float): fusion tolerance, as in ``fuse_checkpoint``.
        opset (int): ONNX opset. Defaults to 11 (mmdeploy's).
        force (bool): overwrite existing outputs. Defaults to False.
        logger: an ``MMLogger``; None: the current one.
        images (list[str], optional): image files for the check and the
            latency instead of the test set's first ``num_images`` (a file
            may repeat: each entry is one timed run). Defaults to None.

    Returns:
        dict: the report that is also written as ``deploy_report.json``.

    Raises:
        FuseError: bad input, a model mmdeploy cannot export or a failed
            check; nothing is written then.
    """
    from mmengine.logging import MMLogger
    logger = logger or MMLogger.get_current_instance()
    start = time.perf_counter()
    cfg = load_config(config)
    _check_out_dir(out_dir, DEPLOY_OUTPUTS, force)
    try:
        import mmdeploy  # noqa: F401
    except ImportError:
        raise FuseError('mmdeploy is not installed (tools/setup_env.sh '
                        'installs it)') from None
    if images is None:
        images = dataset_images(cfg, max(1, num_images))
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise FuseError(f'image not found: {missing[0]}')
    if not images:
        raise FuseError(f'the test set of {config} has no image to check '
                        'the export on')
    created = not os.path.exists(out_dir)
    tmp = _staging_dir(out_dir)
    done = False
    try:
        report = _deploy_into(cfg, config, checkpoint, tmp, evaluate, shape,
                              images, rtol, opset, logger)
        report['outputs'] = [os.path.join(out_dir, n) for n in DEPLOY_OUTPUTS]
        report['seconds'] = round(time.perf_counter() - start, 1)
        with open(os.path.join(tmp, 'deploy_report.json'), 'w') as f:
            json.dump(report, f, indent=2)
        for name in DEPLOY_OUTPUTS:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not done and os.path.isdir(out_dir) and not \
                os.listdir(out_dir):
            os.rmdir(out_dir)
    return report


def _deploy_into(cfg, config, checkpoint, tmp, evaluate, shape, images, rtol,
                 opset, logger) -> Dict:
    fuse_report = fuse_checkpoint(
        config, checkpoint, tmp, onnx=False, shape=shape or (800, 1333),
        image=None if shape else images[0], rtol=rtol, force=True,
        analyze=False, logger=logger, require_acb=False)
    fused_cfg_path = os.path.join(tmp, 'fused_config.py')
    fused_pth = os.path.join(tmp, 'fused.pth')
    fused_cfg = Config.fromfile(fused_cfg_path)
    dcfg = deploy_config(fused_cfg, opset)
    dcfg.dump(os.path.join(tmp, 'deploy_config.py'))
    onnx_path = os.path.join(tmp, 'end2end.onnx')

    from mmdeploy.apis import torch2onnx
    logger.info('exporting the fused detector end to end with mmdeploy')
    try:
        with mmdeploy_export_compat():
            torch2onnx(images[0], tmp, 'end2end.onnx', dcfg, fused_cfg_path,
                       fused_pth, device='cpu')
    except Exception as err:
        raise FuseError(f'mmdeploy cannot export the model of {config}: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if not os.path.isfile(onnx_path):
        raise FuseError('mmdeploy wrote no end2end.onnx')
    custom = needs_custom_ops(onnx_path)
    ops_lib = ort_custom_ops_library() if custom else None
    if custom and not ops_lib:
        raise FuseError(f'the exported file needs custom ops {custom} but '
                        "mmdeploy's onnxruntime op library was not found")

    # the check: a plain onnxruntime session against the torch detector
    stock = _build_detector(fused_cfg).eval()
    stock.load_state_dict(torch.load(fused_pth, map_location='cpu',
                                     weights_only=True)['state_dict'])
    session = ort_session(onnx_path, ops_lib)
    test_cfg = fused_cfg.model.get('test_cfg', {}) or {}
    nms_cfg = test_cfg.get('rcnn', test_cfg)
    min_size = nms_cfg.get('min_bbox_size', -1)
    checks, t_torch, t_onnx = [], [], []
    for path in images:
        inputs, samples = preprocess(fused_cfg, stock, path)
        t0 = time.perf_counter()
        ref = torch_detections(stock, inputs, samples)
        t_torch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        dets, labels = session.run(['dets', 'labels'],
                                   {'input': inputs.numpy()})
        t_onnx.append(time.perf_counter() - t0)
        checks.append(match_detections(
            ref, (dets[0], labels[0]), min_size, nms_cfg.get('score_thr', 0),
            nms_cfg.get('max_per_img')))
    bad = [c for c in checks if c['n_torch'] != c['n_onnx']
           or not c['labels_equal'] or c['max_box_err'] > BOX_ATOL
           or c['max_score_err'] > SCORE_ATOL]
    # mmdeploy's two-stage graph runs one RPN NMS over all levels where
    # mmdet runs it per level, so its proposals (and detections) may differ:
    # the check is reported there, and enforced for one-stage detectors
    two_stage = hasattr(stock, 'roi_head')
    report = dict(
        config=config, checkpoint=checkpoint,
        fuse_max_rel_err=fuse_report['max_rel_err'],
        onnx=dict(file='end2end.onnx', inputs=['input'],
                  outputs=['dets', 'labels'], custom_ops=custom,
                  custom_ops_library=ops_lib, opset=opset),
        check=dict(images=len(checks),
                   detections=sum(c['n_torch'] for c in checks),
                   max_box_err_px=max(c['max_box_err'] for c in checks),
                   max_score_err=max(c['max_score_err'] for c in checks),
                   mismatched_images=len(bad), enforced=not two_stage,
                   degenerate_onnx_boxes=sum(c['n_degenerate']
                                             for c in checks)),
        latency_ms=dict(torch=_median_ms(t_torch), onnx=_median_ms(t_onnx),
                        images=len(images),
                        input_shape=list(inputs.shape)))
    logger.info(f'onnxruntime vs torch on {len(checks)} test images: '
                f'{report["check"]["detections"]} detections, max box error '
                f'{report["check"]["max_box_err_px"]:.3g} px, max score '
                f'error {report["check"]["max_score_err"]:.3g}, '
                f'{len(bad)} images differ')
    if bad and not two_stage:
        c = bad[0]
        raise FuseError(
            f'ONNX check failed on {len(bad)} of {len(checks)} images (first: '
            f'{c["n_onnx"]} vs {c["n_torch"]} detections, box error '
            f'{c["max_box_err"]:.3g} px); nothing written')
    if bad:
        logger.warning(
            f'two-stage detector: the ONNX detections differ from torch on '
            f'{len(bad)} of {len(checks)} images (mmdeploy runs one RPN NMS '
            'over all levels, mmdet one per level); compare the bbox mAP '
            'with --eval')
    if evaluate:
        eval_dir = os.path.join(tmp, 'eval')
        m_torch = evaluate_torch(fused_cfg_path, fused_pth,
                                 os.path.join(eval_dir, 'torch'))
        m_onnx = evaluate_onnx(fused_cfg_path, dcfg, onnx_path,
                               os.path.join(eval_dir, 'onnx'))
        shutil.rmtree(eval_dir, ignore_errors=True)
        report['eval'] = dict(
            torch={k.split('/')[-1]: float(v) for k, v in m_torch.items()
                   if k.startswith('coco/bbox')},
            onnx={k.split('/')[-1]: float(v) for k, v in m_onnx.items()
                  if k.startswith('coco/bbox')})
    return report
