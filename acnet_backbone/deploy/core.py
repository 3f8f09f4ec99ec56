"""The deploy core: one task-agnostic pipeline for every kind of model.

load the config -> pick the task adapter (:func:`.tasks.task_for`) -> refuse
what cannot be deployed (options, a backbone of no kind this package fuses,
an output folder that cannot be written) -> build, load the checkpoint
safely and strictly, fuse, build the stock model and load the fused
weights into it -> verify (the adapter's check) -> write ``fused.pth``,
``fused_config.py`` and, with ``onnx``, ``fused.onnx`` (exported and checked
in onnxruntime), all at once or nothing (:mod:`acnet_backbone.staging`).

``tools/fuse.py`` is :func:`fuse` with its flags as :class:`FuseOptions`;
``tools/deploy.py`` takes a detector further (:mod:`.end2end`).
"""
import dataclasses
import os
import time
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config
from torch import nn

from ..errors import FuseError
from ..staging import check_out_dir, staged_outputs
from .backends import backend_for
from .common import (OUTPUT_NAMES, first_line, load_checkpoint_strict,
                     load_config, write_fused)
from .fuse import fuse_model, has_acb
from .tasks import Task, task_for


@dataclasses.dataclass
class FuseOptions:
    """How :func:`fuse` checks and what it writes.

    Args:
        onnx (bool): also export ``fused.onnx`` and check it in onnxruntime.
            Defaults to False.
        shape (tuple[int, int], optional): H, W of the random check input;
            None: the task's default (800x1333 detector, 512x512 segmentor).
        image (str, optional): detectors: check on this image (through the
            config's test pipeline) instead. Defaults to None.
        num_images (int): segmentors: also check on the first test images
            and report their mIoU. Defaults to 0.
        rtol (float): largest allowed relative error. Defaults to 1e-4.
        opset (int, optional): ONNX opset; None: torch's default.
        force (bool): overwrite existing outputs. Defaults to False.
        analyze (bool): detectors: count parameters and FLOPs. Defaults to
            True.
        precisions (tuple[str], optional): segmentors, with ``onnx``: also
            run ``fused.onnx`` in ``backend`` at each of these precisions
            (OpenVINO: ``fp32``, ``bf16``), checked against torch, with mIoU
            and latency interleaved with torch and onnxruntime. None:
            onnxruntime only.
        backend (str): with ``precisions``: the registered deploy backend
            (:mod:`.backends`) that runs them. Defaults to 'openvino'.
        threads (int, optional): with ``precisions``: onnxruntime's and
            the backend's threads for the timed runs; None: their choice.
        save_ir (bool): with ``precisions``: also write the backend's own
            files of ``fused.onnx`` (OpenVINO: ``fused.xml`` /
            ``fused.bin``). Defaults to False.
        require_acb (bool): refuse a model without ACB ("nothing to fuse");
            False converts a plain (``FCNResNet``) model to its stock form
            too, verified the same way. Defaults to True.
        logger: where progress goes (``MMLogger``); None: the current one.
    """
    onnx: bool = False
    shape: Optional[Tuple[int, int]] = None
    image: Optional[str] = None
    num_images: int = 0
    rtol: float = 1e-4
    opset: Optional[int] = None
    force: bool = False
    analyze: bool = True
    precisions: Optional[Tuple[str, ...]] = None
    backend: str = 'openvino'
    threads: Optional[int] = None
    save_ir: bool = False
    require_acb: bool = True
    logger: Any = None


def load_and_fuse(task: Task, cfg: Config, config: str, checkpoint: str,
                  opts: FuseOptions) -> Tuple[nn.Module, nn.Module, Config,
                                              dict]:
    """``(trained model, stock fused model, stock config, checkpoint)``.

    Raises:
        FuseError: a backbone this package does not fuse, a model that does
            not build, has nothing to fuse (``require_acb``) or does not fit
            the checkpoint.
    """
    stock_cfg = task.stock_config(cfg)  # refuses before any long step
    try:
        model = task.build(cfg)
    except Exception as err:
        raise FuseError(first_line(f'cannot build the model of {config}',
                                   err))
    if opts.require_acb and not has_acb(model):
        raise FuseError(f'nothing to fuse: the model of {config} has no ACB')
    task.check_model(model, opts, config)
    ckpt = load_checkpoint_strict(model, checkpoint)
    model.eval()
    stock = task.build(stock_cfg).eval()
    stock.load_state_dict(fuse_model(model).state_dict(), strict=True)
    if has_acb(stock) or type(stock.backbone).__module__.startswith(
            'acnet_backbone'):
        raise RuntimeError('the fused model still uses acnet_backbone')
    return model, stock, stock_cfg, ckpt


def fuse(config: str, checkpoint: str, out_dir: str,
         options: Optional[FuseOptions] = None,
         task: Optional[Task] = None) -> Dict:
    """Fuse a trained model (detector or segmentor) into its stock form,
    verify it and write it (and its ONNX export) to ``out_dir``.

    Args:
        config (str): the training config (its ``custom_imports`` apply).
        checkpoint (str): the trained checkpoint; loaded with
            ``weights_only=True`` and must match the config exactly.
        out_dir (str): where ``fused.pth``, ``fused_config.py`` and, with
            ``options.onnx``, ``fused.onnx`` go.
        options (FuseOptions, optional): checks and outputs; None: defaults.
        task (Task, optional): the adapter; None: :func:`.tasks.task_for`.

    Returns:
        dict: the report (the task's checks, ``outputs``, ``seconds``).

    Raises:
        FuseError: bad input or a failed check; nothing written.
    """
    from mmengine.logging import MMLogger
    opts = options or FuseOptions()
    logger = opts.logger or MMLogger.get_current_instance()
    start = time.perf_counter()
    cfg = load_config(config)
    task = task or task_for(cfg)
    task.check_options(opts)
    if (opts.precisions or opts.save_ir) and not opts.onnx:
        raise FuseError('`precisions` and `save_ir` run the ONNX file in '
                        f'{opts.backend}: they need `onnx`')
    names = list(OUTPUT_NAMES if opts.onnx else OUTPUT_NAMES[:2])
    if opts.save_ir:
        names += backend_for(opts.backend).native_files([OUTPUT_NAMES[2]])
    check_out_dir(out_dir, names, opts.force)
    model, stock, stock_cfg, ckpt = load_and_fuse(task, cfg, config,
                                                  checkpoint, opts)
    report = dict(config=config, checkpoint=checkpoint)
    state = task.verify(report, model, stock, cfg, opts, logger)
    with staged_outputs(out_dir, names) as tmp:
        write_fused(tmp, ckpt, checkpoint, stock, stock_cfg,
                    task.fused_error(report))
        if opts.onnx:
            task.add_onnx(report, model, stock, state,
                          os.path.join(tmp, 'fused.onnx'), opts, logger)
    if 'mIoU' in report:
        logger.info('mIoU on %d test images: %s', report['num_images'],
                    ', '.join(f'{k} {v:.2f}' for k, v in
                              report['mIoU'].items()))
    report['outputs'] = [os.path.join(out_dir, n) for n in names]
    report['seconds'] = time.perf_counter() - start
    return report


def summary_lines(report: Dict) -> list:
    """The console summary of a :func:`fuse` report, as the tools print it
    (the task is read from the report's keys)."""
    from .tasks import DetectionTask, SegmentationTask
    task = SegmentationTask() if 'fused' in report else DetectionTask()
    return task.summary_lines(report)
