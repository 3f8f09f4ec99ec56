"""Segmentor deployment: a trained ACB segmentor (mmseg) fused into its
stock form (mmdet's ``ResNet`` backbone), verified per pixel, written as
stock-mmseg files and exported to ONNX.

The pipeline is the deploy core's (:func:`acnet_backbone.deploy.core.fuse`)
with the segmentation adapter
(:mod:`acnet_backbone.deploy.tasks.segmentation`, where the helpers once
defined here live; they stay importable from this module).
"""
from typing import Dict, Optional, Tuple

from ..deploy.common import is_segmentor_config, load_config  # noqa: F401
from ..deploy.core import FuseOptions, fuse
from ..deploy.tasks.segmentation import (OWN_HEADS,  # noqa: F401
                                         SegLogits, SegmentationTask,
                                         build_segmentor, check_predictions,
                                         miou, onnx_predictor,
                                         stock_seg_config, val_batches)
from ..errors import FuseError


def summary_lines(report: Dict):
    """The console summary of a :func:`fuse_segmentor_checkpoint` report (as
    ``tools/fuse.py`` and ``tools/deploy.py`` print it)."""
    return SegmentationTask().summary_lines(report)


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
    and W). The arguments are the fields of
    :class:`acnet_backbone.deploy.core.FuseOptions`.

    Returns:
        dict: the report (checks, mIoU, paths, seconds).

    Raises:
        FuseError: bad input or a failed check; nothing written.
    """
    if not is_segmentor_config(load_config(config)):
        raise FuseError(f'{config} is not an mmseg segmentor config (no '
                        'decode_head): use the detector path')
    return fuse(config, checkpoint, out_dir, FuseOptions(
        onnx=onnx, shape=shape, num_images=num_images, rtol=rtol,
        opset=opset, force=force, logger=logger, require_acb=require_acb),
        task=SegmentationTask())
