"""End-to-end deployment of a trained (ACResNet) detector: the pipeline
that ``tools/deploy.py`` runs, one stage per module below it:

fuse (:mod:`.core`, verified) -> export (:mod:`.export`, mmdeploy: decoding
and NMS inside the graph) -> quantize (:mod:`.quantize`, ``int8``) -> run
on a backend (:mod:`.run`, :mod:`.backends`) -> verify (:mod:`.verify`,
against torch) -> evaluate (:mod:`.evaluate`, ``evaluate``) -> report
(:mod:`.report`).

:func:`deploy_checkpoint` chains them and writes everything at once
(:func:`acnet_backbone.staging.staged_outputs`): ``end2end.onnx`` (its
contract: :mod:`.export`), ``deploy_config.py``, ``fused.pth``,
``fused_config.py``, ``deploy_report.json`` and, with ``int8``,
``end2end_int8.onnx`` (the same contract, the network's convolutions in
INT8, post-processing in float). onnxruntime checks the export against
torch before anything is written; another ``backend`` runs the files
beside it. :func:`deploy_any_checkpoint` also takes segmentors.
"""
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from ..errors import FuseError
from ..staging import check_out_dir, staged_outputs, write_json
from .backends import REFERENCE, backend_for, backend_names
from .backends.onnxruntime import ort_session  # noqa: F401 (re-export)
from .common import load_config, median_ms
from .core import FuseOptions, fuse
from .detections import (BOX_ATOL, SCORE_ATOL,  # noqa: F401 (re-export)
                         int8_agreement, match_detections, torch_detections)
from .evaluate import (bbox_metrics, evaluate_end2end,  # noqa: F401
                       evaluate_sessions)
from .export import (custom_ops_of, deploy_config,  # noqa: F401
                     export_end2end, load_stock_detector, needs_custom_ops)
from .options import (DEPLOY_OUTPUTS, INT8_OUTPUT,  # noqa: F401
                      DeployOptions, check_sizes, native_output_names,
                      resolve_options)
from .quantize import calibration_set, quantize_end2end
from .report import summary_lines  # noqa: F401 (re-export)
from .run import open_sessions, run_side_by_side
from .tasks import task_for
from .tasks.detection import (DetectionTask, build_detector,  # noqa: F401
                              dataset_images, preprocess)
from .verify import check_against_torch



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
    opts = resolve_options(opts)  # backend and precisions
    names = DEPLOY_OUTPUTS + ((INT8_OUTPUT, ) if opts.int8 else ()) + tuple(
        native_output_names(opts))
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
        calib = calibration_set(cfg, config, opts.calib_images)
    with staged_outputs(out_dir, names) as tmp:
        report = _deploy_into(tmp, config, checkpoint, images, calib, opts,
                              logger)
        report['outputs'] = [os.path.join(out_dir, n) for n in names]
        report['seconds'] = round(time.perf_counter() - start, 1)
        write_json(os.path.join(tmp, 'deploy_report.json'), report)
    return report


def segmentor_precisions(backend: str, precisions: Optional[Sequence[str]],
                         save_ir: bool, threads: Optional[int]
                         ) -> Optional[Tuple[str, ...]]:
    """The precisions a segmentor's deployment runs in ``backend`` beside
    onnxruntime: None with onnxruntime alone; with another registered
    backend those asked for, by default every one the CPU runs natively
    except int8 (a segmentor has no INT8 file).

    Raises:
        FuseError: an unknown backend; int8 asked for; ``threads`` or
            ``save_ir`` without another backend (a segmentor is timed beside
            it); ``save_ir`` with a backend that has no file format of its
            own; see :func:`.backends.plan_backend`.
    """
    runtime = backend_for(backend)  # an unknown name: one line, the known
    if backend == REFERENCE:
        if precisions or save_ir or threads is not None:
            others = [b for b in backend_names() if b != REFERENCE]
            raise FuseError('`precisions`, `save_ir` and `threads` of a '
                            f'segmentor need `backend` {" or ".join(others)} '
                            '(it is timed beside onnxruntime); onnxruntime '
                            'runs it in FP32 (fused.onnx)')
        return None
    if 'int8' in (precisions or ()):
        raise FuseError(
            '`precisions` int8: a segmentor has no INT8 file; '
            f'{runtime.display} runs it in '
            + ' or '.join(p for p in runtime.precisions if p != 'int8'))
    if save_ir and not runtime.native_format:
        raise FuseError(f'`save_ir`: {runtime.display} has no file format '
                        'of its own')
    runtime.check_installed()
    caps = runtime.capabilities()
    if precisions is None:
        precisions = [p for p in runtime.native_precisions(caps)
                      if p != 'int8']
    return tuple(runtime.plan(precisions, False, caps)['precisions'])


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
        **({'backend': kwargs['backend']} if precisions else {}),
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
    report = quantize_end2end(
        onnx_path, os.path.join(tmp, INT8_OUTPUT), calib['inputs'],
        custom_ops=ops_lib, logger=logger, **(opts.int8_options or {}))
    report.update(calib_images=len(calib['paths']),
                  calib_source=calib['source'], calib_files=calib['paths'])
    return report


def _export_into(tmp: str, config: str, checkpoint: str,
                 images: Sequence[str], calib: Optional[Dict],
                 opts: DeployOptions, logger) -> Tuple[Dict, Dict, Dict]:
    """fuse -> export -> (quantise), in ``tmp``.

    Returns:
        tuple[dict, dict, dict]: the report so far; the files (``onnx``,
        ``onnx_int8``, ``fused_config``, ``fused_pth``); the export's
        ``deploy_cfg`` and ``ops_lib``.
    """
    fuse_report = _fuse_into(tmp, config, checkpoint, images[0], opts,
                             logger)
    paths = dict(fused_config=os.path.join(tmp, 'fused_config.py'),
                 fused_pth=os.path.join(tmp, 'fused.pth'))
    logger.info('exporting the fused detector end to end with mmdeploy')
    dcfg, onnx_path = export_end2end(paths['fused_config'],
                                     paths['fused_pth'], images[0], tmp,
                                     opts.opset)
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
    return report, files, dict(paths, deploy_cfg=dcfg, ops_lib=ops_lib)


def _backend_sessions(sessions: Dict, opts: DeployOptions) -> Dict:
    """The sessions of the chosen backend (none when it is the reference)."""
    if opts.backend == REFERENCE:
        return {}
    backend = backend_for(opts.backend)
    names = {backend.session_name(p) for p in opts.precisions or ()}
    return {n: s for n, s in sessions.items() if n in names}


def _deploy_into(tmp: str, config: str, checkpoint: str,
                 images: Sequence[str], calib: Optional[Dict],
                 opts: DeployOptions, logger) -> Dict:
    """fuse -> export -> (quantise) -> run -> verify -> (evaluate), in
    ``tmp``."""
    report, files, export = _export_into(tmp, config, checkpoint, images,
                                         calib, opts, logger)
    fused_cfg = Config.fromfile(export['fused_config'])
    stock = load_stock_detector(fused_cfg, export['fused_pth'])
    sessions = open_sessions(files, opts.backend, opts.precisions or (),
                             opts.threads, export['ops_lib'], logger)
    run = run_side_by_side(stock, fused_cfg, images, sessions)
    enforce = not hasattr(stock, 'roi_head')
    report['check'] = check_against_torch(run, fused_cfg, images, enforce,
                                          logger)
    report['latency_ms'] = dict(
        {name: median_ms(t) for name, t in run['seconds'].items()},
        images=len(images), input_shape=run['input_shape'],
        threads=opts.threads, torch_threads=torch.get_num_threads())
    others = _backend_sessions(sessions, opts)
    if others:
        backend = backend_for(opts.backend)
        fp32 = backend.session_name('fp32')
        report[backend.name] = backend.report_section(others, run, files, {
            fp32: check_against_torch(run, fused_cfg, images, enforce,
                                      logger, fp32)} if fp32 in others
            else None)
        if opts.save_ir:
            for path in files.values():
                backend.save_native(path)
    if calib is not None:
        report['int8']['vs_fp32'] = int8_agreement(run['onnx'],
                                                   run['onnx_int8'])
    if opts.evaluate:
        report['eval'] = evaluate_end2end(
            export['fused_config'], export['fused_pth'],
            export['deploy_cfg'], files, os.path.join(tmp, 'eval'))
        report['eval'].update(evaluate_sessions(
            export['fused_config'], export['deploy_cfg'], files['onnx'],
            others, os.path.join(tmp, 'backend_eval')))
    return report
