"""End-to-end deployment: a trained (ACResNet) detector to an ONNX file that
takes the preprocessed image tensor and returns boxes, through mmdeploy.

The detector is first fused and verified by :func:`fuse_checkpoint` (the
code behind ``tools/fuse.py``); mmdeploy then exports the *fused, stock*
detector (``fused_config.py`` + ``fused.pth``: no plugin involved) with its
ObjectDetection task and onnxruntime backend, decoding and NMS inside the
graph. The ONNX file is checked in a plain onnxruntime session against the
torch detector before anything is written; ``evaluate=True`` adds the bbox
mAP of both on the config's test set and their per-image latency.
``int8=True`` adds ``end2end_int8.onnx`` (:mod:`.quantize`: the same
contract, the network's convolutions in INT8, post-processing in float),
checked, timed and evaluated beside the FP32 file.

The steps are separate functions: :func:`export_end2end` (mmdeploy),
:func:`run_side_by_side` and :func:`check_against_torch` (onnxruntime vs
torch, latency), :func:`evaluate_end2end` (bbox mAP); :func:`deploy_checkpoint`
chains them and writes everything at once (:func:`.staging.staged_outputs`).

File contract (``end2end.onnx``): input ``input`` = the ``[1, 3, H, W]``
float32 tensor after the config's data preprocessor (H, W dynamic); outputs
``dets`` ``[1, K, 5]`` (x1, y1, x2, y2, score in input pixels, boxes clipped
to the input tensor's extent) and ``labels`` ``[1, K]`` (int64). Unlike
mmdet, mmdeploy's graph keeps boxes that clipping made flat (zero width or
height, ``min_bbox_size``); they overlap nothing, drop them if they bother
you.
"""
import copy
import dataclasses
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from ..errors import FuseError
from ..staging import check_out_dir, staged_outputs, write_json
from ..tables import markdown_table
from .backends import openvino
from .backends.onnxruntime import ort_session  # noqa: F401 (re-export)
from .common import load_config, median_ms
from .core import FuseOptions, fuse
from .mmdeploy_compat import mmdeploy_export_compat, ort_custom_ops_library
from .tasks import task_for
from .tasks.detection import (DetectionTask, build_detector,  # noqa: F401
                              dataset_images, preprocess)

DEPLOY_OUTPUTS = ('end2end.onnx', 'deploy_config.py', 'fused.pth',
                  'fused_config.py', 'deploy_report.json')
INT8_OUTPUT = 'end2end_int8.onnx'
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
    graph may not: those ONNX boxes are counted (``n_degenerate``, those
    above the score floor) and left out, and so are detections whose score
    lies within ``SCORE_ATOL`` of a cut-off, where a near-tie may go either
    way: ``score_thr``, and the lowest score of a list that ``max_per_img``
    truncated.

    Returns:
        dict: ``n_torch``, ``n_onnx``, ``labels_equal``, ``n_degenerate`` and
        ``max_box_err`` / ``max_score_err``, which are None when the two
        lists cannot be paired (different counts or labels).
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
        # rows under the score floor (e.g. the all-zero rows mmdeploy's NMS
        # pads its output with) are no detections, flat or not
        n_degenerate = int((~keep & (gd[:, 4] > floor)).sum())
        gd, gl = gd[keep], gl[keep]
    ro, go = np.argsort(-rd[:, 4], kind='stable'), np.argsort(
        -gd[:, 4], kind='stable')
    rd, rl, gd, gl = rd[ro], rl[ro], gd[go], gl[go]
    rk, gk = rd[:, 4] > floor, gd[:, 4] > floor
    rd, rl, gd, gl = rd[rk], rl[rk], gd[gk], gl[gk]
    # the errors stay None (not 0) when the lists cannot be paired
    out = dict(n_torch=int(len(rd)), n_onnx=int(len(gd)), max_box_err=None,
               max_score_err=None, labels_equal=True,
               n_degenerate=n_degenerate)
    if len(rd) != len(gd):
        return out
    out.update(max_box_err=0.0, max_score_err=0.0)
    if len(rd):
        # within a group of equal scores the order is arbitrary: match each
        # torch box to the nearest ONNX box of the same label
        used = np.zeros(len(gd), bool)
        for i in range(len(rd)):
            cand = np.where(~used & (gl == rl[i]) & (np.abs(
                gd[:, 4] - rd[i, 4]) <= SCORE_ATOL))[0]
            if not len(cand):
                out.update(labels_equal=False, max_box_err=None,
                           max_score_err=None)
                return out
            errs = np.abs(gd[cand, :4] - rd[i, :4]).max(1)
            j = cand[int(errs.argmin())]
            used[j] = True
            out['max_box_err'] = max(out['max_box_err'], float(errs.min()))
            out['max_score_err'] = max(out['max_score_err'],
                                       float(abs(gd[j, 4] - rd[i, 4])))
    return out




def _max_or_none(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return max(values) if values else None


def export_end2end(fused_cfg_path: str, fused_pth: str, image: str,
                   work_dir: str, opset: int = 11) -> Tuple[Config, str]:
    """Export the stock (fused) detector end to end with mmdeploy.

    Writes ``deploy_config.py`` and ``end2end.onnx`` into ``work_dir``.

    Args:
        fused_cfg_path (str): the stock detector's config.
        fused_pth (str): its checkpoint.
        image (str): the image mmdeploy traces the export on.
        work_dir (str): where the files go.
        opset (int): ONNX opset. Defaults to 11 (mmdeploy's).

    Returns:
        tuple[Config, str]: mmdeploy's deploy config and the ONNX path.

    Raises:
        FuseError: mmdeploy cannot export the model (one line).
    """
    from mmdeploy.apis import torch2onnx
    dcfg = deploy_config(Config.fromfile(fused_cfg_path), opset)
    dcfg.dump(os.path.join(work_dir, 'deploy_config.py'))
    onnx_path = os.path.join(work_dir, 'end2end.onnx')
    try:
        with mmdeploy_export_compat():
            torch2onnx(image, work_dir, 'end2end.onnx', dcfg, fused_cfg_path,
                       fused_pth, device='cpu')
    except Exception as err:
        raise FuseError(f'mmdeploy cannot export the model: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if not os.path.isfile(onnx_path):
        raise FuseError('mmdeploy wrote no end2end.onnx')
    return dcfg, onnx_path


def custom_ops_of(onnx_path: str) -> Tuple[List[str], Optional[str]]:
    """The file's custom op types and mmdeploy's onnxruntime op library that
    provides them (None when none is needed).

    Raises:
        FuseError: custom ops are needed and the library is missing.
    """
    custom = needs_custom_ops(onnx_path)
    ops_lib = ort_custom_ops_library() if custom else None
    if custom and not ops_lib:
        raise FuseError(f'the exported file needs custom ops {custom} but '
                        "mmdeploy's onnxruntime op library was not found")
    return custom, ops_lib


def load_stock_detector(fused_cfg: Config, fused_pth: str) -> torch.nn.Module:
    """The stock detector of ``fused_config.py`` + ``fused.pth``, in eval
    mode (loaded with ``weights_only=True``)."""
    stock = build_detector(fused_cfg).eval()
    stock.load_state_dict(torch.load(fused_pth, map_location='cpu',
                                     weights_only=True)['state_dict'])
    return stock


def run_side_by_side(stock, cfg: Config, images: Sequence[str],
                     sessions: Dict[str, object]) -> Dict:
    """Run the torch detector and every onnxruntime session on each image,
    interleaved on the same preprocessed input (fair latency comparison).

    Args:
        stock: the torch detector (eval mode).
        cfg (Config): its config (test pipeline).
        images (Sequence[str]): image files; each entry is one timed run.
        sessions (dict): name -> onnxruntime session of an end-to-end file.

    Returns:
        dict: ``torch`` (list of ``(dets, labels)``), one such list per
        session name, ``seconds`` (name -> per-image seconds, ``torch``
        included) and ``input_shape`` (of the last input).
    """
    run = dict(torch=[], **{name: [] for name in sessions})
    seconds = {name: [] for name in run}
    for path in images:
        inputs, samples = preprocess(cfg, stock, path)
        t0 = time.perf_counter()
        run['torch'].append(torch_detections(stock, inputs, samples))
        seconds['torch'].append(time.perf_counter() - t0)
        for name, session in sessions.items():
            t0 = time.perf_counter()
            dets, labels = session.run(['dets', 'labels'],
                                       {'input': inputs.numpy()})
            seconds[name].append(time.perf_counter() - t0)
            run[name].append((dets[0], labels[0]))
    run['seconds'] = seconds
    run['input_shape'] = list(inputs.shape)
    return run


def check_against_torch(run: Dict, cfg: Config, images: Sequence[str],
                        enforce: bool, logger, name: str = 'onnx') -> Dict:
    """Compare the FP32 file's detections (``run[name]``: onnxruntime's,
    or OpenVINO FP32's) with torch's, image by image
    (:func:`match_detections`).

    Args:
        run (dict): the result of :func:`run_side_by_side`.
        cfg (Config): the stock detector's config (its ``test_cfg``).
        images (Sequence[str]): the images of ``run``, in order.
        enforce (bool): raise when an image differs (one-stage detectors);
            otherwise warn (two-stage: mmdeploy runs one RPN NMS over all
            levels, mmdet one per level).
        logger: an ``MMLogger``.

    Returns:
        dict: the ``check`` section of the report; ``differing_images``
        names every image whose detections differ, and the box and score
        errors cover only the images that could be paired (None if none).

    Raises:
        FuseError: ``enforce`` and an image differs.
    """
    test_cfg = cfg.model.get('test_cfg', {}) or {}
    nms_cfg = test_cfg.get('rcnn', test_cfg)
    checks = [match_detections(ref, got, nms_cfg.get('min_bbox_size', -1),
                               nms_cfg.get('score_thr', 0),
                               nms_cfg.get('max_per_img'))
              for ref, got in zip(run['torch'], run[name], strict=True)]
    bad = [(path, c) for path, c in zip(images, checks)
           if c['max_box_err'] is None or c['max_box_err'] > BOX_ATOL
           or c['max_score_err'] > SCORE_ATOL]
    check = dict(
        images=len(checks), detections=sum(c['n_torch'] for c in checks),
        max_box_err_px=_max_or_none(c['max_box_err'] for c in checks),
        max_score_err=_max_or_none(c['max_score_err'] for c in checks),
        mismatched_images=len(bad), enforced=enforce,
        degenerate_onnx_boxes=sum(c['n_degenerate'] for c in checks),
        differing_images=[dict(image=path, **c) for path, c in bad])
    box_err = check['max_box_err_px']
    label = 'onnxruntime' if name == 'onnx' else name
    logger.info(f'{label} vs torch on {len(checks)} images: '
                f'{check["detections"]} detections, max box error '
                f'{"n/a" if box_err is None else f"{box_err:.3g}"} px, '
                f'{len(bad)} images differ')
    if bad and enforce:
        path, c = bad[0]
        err = 'n/a' if c['max_box_err'] is None else \
            f'{c["max_box_err"]:.3g} px'
        raise FuseError(
            f'{"ONNX" if name == "onnx" else label} check failed on '
            f'{len(bad)} of {len(checks)} images (first: '
            f'{path}: {c["n_onnx"]} vs {c["n_torch"]} detections, box error '
            f'{err}); nothing written')
    if bad:
        logger.warning(
            f'the ONNX detections differ from torch on {len(bad)} of '
            f'{len(checks)} images (two-stage: mmdeploy runs one RPN NMS over '
            'all levels, mmdet one per level): '
            f'{", ".join(os.path.basename(p) for p, _ in bad)}; compare the '
            'bbox mAP with --eval')
    return check


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
    """COCO metrics of an end-to-end ONNX file on the test set, through
    mmdeploy's task processor (its onnxruntime backend model)."""
    from mmdeploy.apis import build_task_processor
    model_cfg = Config.fromfile(cfg_path)
    processor = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    model = processor.build_backend_model(
        [onnx_path], processor.update_data_preprocessor)
    runner = processor.build_test_runner(model, work_dir)
    return runner.test()


def bbox_metrics(metrics: Dict, evaluator) -> Dict[str, float]:
    """The ``coco/bbox_*`` metrics of an evaluation under their short names;
    mAP 0 for a model that detected nothing (mmdet's CocoMetric returns no
    key at all then)."""
    from ..study.runs import complete_metrics
    metrics, _ = complete_metrics(metrics, evaluator)
    return {k.split('/')[-1]: float(v) for k, v in metrics.items()
            if k.startswith('coco/bbox')}


def evaluate_end2end(fused_cfg_path: str, fused_pth: str, deploy_cfg: Config,
                     onnx_files: Dict[str, str], work_dir: str) -> Dict:
    """bbox metrics of the torch detector (``'torch'``) and of each ONNX
    file (name -> path) on the test set, as ``{name: {'bbox_mAP': ...}}``.
    ``work_dir`` holds the runners' files and is removed afterwards. A
    model that detects nothing gets mAP 0 (mmdet's CocoMetric returns no
    key at all then)."""
    evaluator = Config.fromfile(fused_cfg_path).test_evaluator
    try:
        result = dict(torch=bbox_metrics(evaluate_torch(
            fused_cfg_path, fused_pth, os.path.join(work_dir, 'torch')),
            evaluator))
        for name, path in onnx_files.items():
            result[name] = bbox_metrics(evaluate_onnx(
                fused_cfg_path, deploy_cfg, path,
                os.path.join(work_dir, name)), evaluator)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _input_images(cfg: Config, config: str, images: Optional[Sequence[str]],
                  num_images: int) -> List[str]:
    if images is None:
        images = dataset_images(cfg, max(1, num_images))
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise FuseError(f'image not found: {missing[0]}')
    if not images:
        raise FuseError(f'the test set of {config} has no image to check '
                        'the export on')
    return list(images)


@dataclasses.dataclass
class DeployOptions:
    """How :func:`deploy` checks, what it measures and writes.

    Args:
        evaluate (bool): bbox mAP of torch and ONNX (and INT8) on the test
            set. Defaults to False.
        shape (tuple[int, int], optional): H, W of the random fusion check
            input; None: the first check image through the test pipeline.
        num_images (int): test images for the onnxruntime-vs-torch check and
            the latency. Defaults to 20.
        rtol (float): fusion tolerance. Defaults to 1e-4.
        opset (int): ONNX opset of ``end2end.onnx``. Defaults to 11
            (mmdeploy's); the INT8 file is converted to
            :data:`~acnet_backbone.deploy.quantize.INT8_OPSET`.
        force (bool): overwrite existing outputs. Defaults to False.
        logger: an ``MMLogger``; None: the current one.
        images (list[str], optional): image files for the check and the
            latency instead of the test set's first ``num_images`` (a file
            may repeat: each entry is one timed run). Defaults to None.
        int8 (bool): also write ``end2end_int8.onnx``
            (:func:`~acnet_backbone.deploy.quantize.quantize_end2end`).
            Defaults to False.
        calib_images (int | list[str]): the number of training images
            (evenly spread over the training set, through the test pipeline)
            that calibrate the INT8 activations, or the image files.
            Defaults to 64.
        int8_options (dict, optional): keyword arguments of
            ``quantize_end2end`` (``scope``, ``activations``, ``method``).
        threads (int, optional): onnxruntime intra-op threads of the check
            and latency sessions (OpenVINO's too); None: the runtime's choice.
        backend (str): ``'onnxruntime'`` or ``'openvino'``: the end-to-end
            files also compiled by OpenVINO, checked against torch, timed
            and (``evaluate``) evaluated beside onnxruntime
            (:mod:`.backends.openvino`). Defaults to ``'onnxruntime'``.
        precisions (list[str], optional): ``fp32``/``bf16``/``int8``; int8
            implies ``int8``; None: onnxruntime fp32, OpenVINO every
            precision the CPU runs natively. Defaults to None.
        save_ir (bool): openvino: also write the files as OpenVINO IR
            (``end2end.xml``/``.bin``, ``end2end_int8.xml``/``.bin``).
            Defaults to False.
    """
    evaluate: bool = False
    shape: Optional[Tuple[int, int]] = None
    num_images: int = 20
    rtol: float = 1e-4
    opset: int = 11
    force: bool = False
    logger: Any = None
    images: Optional[Sequence[str]] = None
    int8: bool = False
    calib_images: Union[int, Sequence[str]] = 64
    int8_options: Optional[Dict] = None
    threads: Optional[int] = None
    backend: str = 'onnxruntime'
    precisions: Optional[Sequence[str]] = None
    save_ir: bool = False


def deploy_checkpoint(config: str, checkpoint: str, out_dir: str,
                      **kwargs) -> Dict:
    """Fuse, verify and export a detector end to end through mmdeploy;
    optionally quantise the export to INT8. ``kwargs`` are the fields of
    :class:`DeployOptions`.

    Writes ``end2end.onnx``, ``deploy_config.py`` (the mmdeploy config
    used), ``fused.pth``, ``fused_config.py``, ``deploy_report.json`` and,
    with ``int8``, ``end2end_int8.onnx`` into ``out_dir``, all at once.

    Returns:
        dict: the report that is also written as ``deploy_report.json``.

    Raises:
        FuseError: bad input, a model mmdeploy cannot export or quantise, or
            a failed check; nothing is written then.
    """
    return deploy(config, checkpoint, out_dir, DeployOptions(**kwargs))


def deploy(config: str, checkpoint: str, out_dir: str,
           opts: DeployOptions) -> Dict:
    """:func:`deploy_checkpoint` with its options as one object."""
    from mmengine.logging import MMLogger
    logger = opts.logger or MMLogger.get_current_instance()
    start = time.perf_counter()
    cfg = load_config(config)
    opts = openvino.resolve_options(opts)  # backend and precisions
    names = DEPLOY_OUTPUTS + ((INT8_OUTPUT, ) if opts.int8 else ()) + tuple(
        openvino.output_names(opts))
    check_out_dir(out_dir, names, opts.force)
    try:
        import mmdeploy  # noqa: F401
    except ImportError:
        raise FuseError('mmdeploy is not installed (tools/setup_env.sh '
                        'installs it)') from None
    DetectionTask().stock_config(cfg)  # refuse a foreign backbone early
    images = _input_images(cfg, config, opts.images, opts.num_images)
    calib = None
    if opts.int8:  # read the calibration set before any long step
        from .quantize import calibration_set
        calib = calibration_set(cfg, config, opts.calib_images)
    with staged_outputs(out_dir, names) as tmp:
        report = _deploy_into(tmp, config, checkpoint, images, calib, opts,
                              logger)
        report['outputs'] = [os.path.join(out_dir, n) for n in names]
        report['seconds'] = round(time.perf_counter() - start, 1)
        write_json(os.path.join(tmp, 'deploy_report.json'), report)
    return report


def check_sizes(shape: Optional[Tuple[int, int]], num_images: int,
                threads: Optional[int]) -> None:
    """Refuse a check input under 32x32 and counts under 1 (one line)."""
    if shape and min(shape) < 32:
        raise FuseError(f'`shape` {shape[0]} {shape[1]} is too small (at '
                        'least 32 32)')
    for name, value in (('num_images', num_images), ('threads', threads)):
        if value is not None and value < 1:
            raise FuseError(f'`{name}` must be at least 1')


def segmentor_precisions(backend: str, precisions: Optional[Sequence[str]],
                         save_ir: bool, threads: Optional[int]
                         ) -> Optional[Tuple[str, ...]]:
    """The OpenVINO precisions a segmentor's deployment runs: None with
    onnxruntime; with openvino those asked for, by default every one the CPU
    runs natively except int8 (a segmentor has no INT8 file).

    Raises:
        FuseError: int8 asked for; ``threads`` or ``save_ir`` without
            openvino (a segmentor is timed beside OpenVINO only); see
            :func:`.backends.openvino.plan_backend`.
    """
    if backend == 'onnxruntime':
        if precisions or save_ir or threads is not None:
            raise FuseError('`precisions`, `save_ir` and `threads` of a '
                            'segmentor need `backend` openvino (it is '
                            'timed beside OpenVINO); onnxruntime runs it '
                            'in FP32 (fused.onnx)')
        return None
    if 'int8' in (precisions or ()):
        raise FuseError('`precisions` int8: a segmentor has no INT8 file; '
                        'OpenVINO runs it in fp32 or bf16')
    caps = openvino.cpu_capabilities() if backend == 'openvino' else None
    if precisions is None and caps is not None:
        precisions = [p for p in openvino.native_precisions(caps)
                      if p != 'int8']
    return tuple(openvino.plan_backend(backend, precisions, False,
                                       caps)['openvino'])


def deploy_any_checkpoint(config: str,
                          checkpoint: str,
                          out_dir: str,
                          evaluate: bool = False,
                          shape: Optional[Tuple[int, int]] = None,
                          num_images: int = 20,
                          int8: bool = False,
                          threads: Optional[int] = None,
                          **kwargs) -> Dict:
    """``tools/deploy.py``'s one call: a detector end to end through
    :func:`deploy_checkpoint`; an mmseg segmentor, whose end-to-end output
    is its per-pixel class scores, through the deploy core
    (:func:`acnet_backbone.deploy.core.fuse`) with ``onnx=True``
    (``fused.onnx``): verified on a random ``shape`` input (default 512x512)
    and on ``num_images`` test images, or on the whole test set with
    ``evaluate``, with the mIoU of the trained, fused and ONNX models. As for
    a detector, a plain (no-ACB) model of this package's backbones is
    converted and verified too. ``kwargs``: ``rtol``, ``force``, ``logger``,
    and for detectors ``calib_images``, ``int8_options``, ``opset``,
    ``images``.

    Raises:
        FuseError: bad input (also an option only detectors take) or a
            failed check; nothing written.
    """
    check_sizes(shape, num_images, threads)
    task = task_for(load_config(config))
    if task.name == 'detector':
        return deploy_checkpoint(config, checkpoint, out_dir,
                                 evaluate=evaluate, shape=shape,
                                 num_images=num_images, int8=int8,
                                 threads=threads, **kwargs)
    if int8:
        raise FuseError('`int8` is for detectors; a segmentor is deployed '
                        'in FP32 (fused.onnx)')
    precisions = segmentor_precisions(kwargs.get('backend', 'onnxruntime'),
                                      kwargs.get('precisions'),
                                      kwargs.get('save_ir', False), threads)
    options = FuseOptions(
        onnx=True, shape=shape, require_acb=False,
        num_images=sys.maxsize if evaluate else num_images,
        precisions=precisions, threads=threads,
        save_ir=kwargs.get('save_ir', False),
        **{k: kwargs[k] for k in ('rtol', 'force', 'logger') if k in kwargs})
    return fuse(config, checkpoint, out_dir, options, task=task)


def _fuse_into(tmp: str, config: str, checkpoint: str, image: str,
               opts: DeployOptions, logger) -> Dict:
    """The fused stock detector's files in ``tmp`` (the deploy core)."""
    return fuse(config, checkpoint, tmp, FuseOptions(
        shape=opts.shape, image=None if opts.shape else image,
        rtol=opts.rtol, force=True, analyze=False, logger=logger,
        require_acb=False), task=DetectionTask())


def _quantize_into(tmp: str, onnx_path: str, ops_lib: Optional[str],
                   calib: Dict, opts: DeployOptions, logger) -> Dict:
    """``end2end_int8.onnx`` in ``tmp``; its report section."""
    from .quantize import quantize_end2end
    report = quantize_end2end(
        onnx_path, os.path.join(tmp, INT8_OUTPUT), calib['inputs'],
        custom_ops=ops_lib, logger=logger, **(opts.int8_options or {}))
    report.update(calib_images=len(calib['paths']),
                  calib_source=calib['source'], calib_files=calib['paths'])
    return report


def _deploy_into(tmp: str, config: str, checkpoint: str,
                 images: Sequence[str], calib: Optional[Dict],
                 opts: DeployOptions, logger) -> Dict:
    """fuse -> export -> (quantise) -> check -> (evaluate), in ``tmp``."""
    fuse_report = _fuse_into(tmp, config, checkpoint, images[0], opts,
                             logger)
    fused_cfg_path = os.path.join(tmp, 'fused_config.py')
    fused_pth = os.path.join(tmp, 'fused.pth')
    fused_cfg = Config.fromfile(fused_cfg_path)
    logger.info('exporting the fused detector end to end with mmdeploy')
    dcfg, onnx_path = export_end2end(fused_cfg_path, fused_pth, images[0],
                                     tmp, opts.opset)
    custom, ops_lib = custom_ops_of(onnx_path)
    files = dict(onnx=onnx_path)
    report = dict(
        config=config, checkpoint=checkpoint,
        fuse_max_rel_err=fuse_report['max_rel_err'],
        onnx=dict(file='end2end.onnx', inputs=['input'],
                  outputs=['dets', 'labels'], custom_ops=custom,
                  custom_ops_library=ops_lib, opset=opts.opset))
    if calib is not None:
        report['int8'] = _quantize_into(tmp, onnx_path, ops_lib, calib, opts,
                                        logger)
        files['onnx_int8'] = os.path.join(tmp, INT8_OUTPUT)
    stock = load_stock_detector(fused_cfg, fused_pth)
    ov = openvino.openvino_sessions(files, opts.precisions or (),
                                    opts.threads, logger)
    run = run_side_by_side(stock, fused_cfg, images, {
        **{name: ort_session(path, ops_lib, opts.threads)
           for name, path in files.items()}, **ov})
    report['check'] = check_against_torch(
        run, fused_cfg, images, not hasattr(stock, 'roi_head'), logger)
    report['latency_ms'] = dict(
        {name: median_ms(t) for name, t in run['seconds'].items()},
        images=len(images), input_shape=run['input_shape'],
        threads=opts.threads, torch_threads=torch.get_num_threads())
    if opts.backend == 'openvino':
        report['openvino'] = openvino.openvino_report(
            ov, run, openvino.cpu_capabilities(), {
                name: check_against_torch(run, fused_cfg, images, not hasattr(
                    stock, 'roi_head'), logger, name) for name in ov
                if name == openvino.NAMES['fp32']})
        if opts.save_ir:
            openvino.write_ir(files)
    if calib is not None:
        from .quantize import int8_agreement
        report['int8']['vs_fp32'] = int8_agreement(run['onnx'],
                                                   run['onnx_int8'])
    if opts.evaluate:
        report['eval'] = evaluate_end2end(fused_cfg_path, fused_pth, dcfg,
                                          files, os.path.join(tmp, 'eval'))
        report['eval'].update(openvino.evaluate_openvino(
            fused_cfg_path, dcfg, onnx_path, ov, os.path.join(tmp, 'ov')))
    return report


def _fmt(value, spec: str = '.3g') -> str:
    return 'n/a' if value is None else format(value, spec)


def _int8_rows(q: Dict) -> List[Tuple[str, str]]:
    images = 'training images' if q.get('calib_source', '').startswith(
        'training') else 'given images'
    return [('INT8', f'{q["scope"]}, weights {q["weights"]}, activations '
             f'{q["activations"]}, {q["calibrate_method"]} on '
             f'{q["calib_images"]} {images}, opset {q["opset"]}'),
            (f'INT8 vs ONNX, detections found (IoU >= '
             f'{q["vs_fp32"]["iou_thr"]})', _fmt(q['vs_fp32']['matched'],
                                                 '.1%'))] + (
        [('INT8 weight range', q['weight_range_reason'])]
        if q.get('weight_range_reason') else [])


def summary_lines(report: Dict) -> List[str]:
    """The markdown table of a :func:`deploy_checkpoint` report (checks,
    latency and, when evaluated, mAP of torch, the FP32 file and the INT8
    file side by side), as ``tools/deploy.py`` prints it."""
    check, lat = report['check'], report['latency_ms']
    rows = [('fused vs trained, max rel err',
             f'{report["fuse_max_rel_err"]:.3g}'),
            ('ONNX vs torch, images / detections',
             f'{check["images"]} / {check["detections"]}'),
            ('ONNX vs torch, max box err (px)', _fmt(check['max_box_err_px'])),
            ('ONNX vs torch, max score err', _fmt(check['max_score_err']))]
    if check['mismatched_images']:
        rows.append(('ONNX vs torch, images that differ', ', '.join(
            os.path.basename(d['image']) for d in check['differing_images'])))
    names = [n for n in ('torch', 'onnx', 'onnx_int8', *openvino.LABELS)
             if n in lat]
    head = ' / '.join(dict(torch='torch', onnx='ONNX', onnx_int8='INT8',
                           **openvino.LABELS)[n] for n in names)
    shape = 'x'.join(map(str, lat['input_shape'][-2:]))
    rows.append((f'median latency {head} (ms, {shape})',
                 ' / '.join(f'{lat[n]:.1f}' for n in names)))
    for key in ('bbox_mAP', 'bbox_mAP_50') if 'eval' in report else ():
        rows.append((f'{key} {head}', ' / '.join(
            f'{report["eval"][n][key]:.3f}' for n in names)))
    if 'int8' in report:
        rows += _int8_rows(report['int8'])
    if 'openvino' in report:
        rows += openvino.summary_rows(report['openvino'])
    custom = report['onnx']['custom_ops']
    rows.append(('custom ops needed', ', '.join(custom) + ' (mmdeploy '
                 'onnxruntime op library)' if custom else 'none'))
    return markdown_table(['check', 'value'], rows)
