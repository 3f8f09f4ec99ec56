"""Fusing a trained model from its checkpoint (``tools/fuse.py``): the entry
points over the deploy core (:mod:`.core`), under their established names.

:func:`fuse_checkpoint` takes a detector, :func:`fuse_any_checkpoint` either
task. The helpers once defined here live in :mod:`.common` and
:mod:`.tasks.detection` and stay importable from this module.
"""
from typing import Dict, Optional, Tuple

from ..errors import FuseError
from .common import (ACB_ONLY_KEYS, OUTPUT_NAMES, TOP_KEYS,  # noqa: F401
                     compare, flatten_outputs, is_segmentor_config,
                     load_checkpoint_strict, load_config, other_size_input,
                     to_plain)
from .core import FuseOptions, fuse, summary_lines  # noqa: F401
from .tasks import task_for
from .tasks.detection import (DetectionTask, TensorModeWrapper,  # noqa: F401
                              build_detector, check_onnx, complexity,
                              export_and_check_onnx, image_input, preprocess,
                              stock_config, tensor_forward)

__all__ = ['FuseError', 'FuseOptions', 'fuse_any_checkpoint',
           'fuse_checkpoint']


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
    """Fuse a trained ACB detector into a stock mmdet detector
    (:func:`.core.fuse` with the detection adapter); the arguments are the
    fields of :class:`.core.FuseOptions`.

    Returns:
        dict: the report (errors, sizes, paths, seconds).

    Raises:
        FuseError: bad input or a failed verification; nothing written.
    """
    return fuse(config, checkpoint, out_dir, FuseOptions(
        onnx=onnx, shape=shape, image=image, rtol=rtol, opset=opset,
        force=force, analyze=analyze, logger=logger,
        require_acb=require_acb), task=DetectionTask())


def fuse_any_checkpoint(config: str,
                        checkpoint: str,
                        out_dir: str,
                        onnx: bool = False,
                        shape: Optional[Tuple[int, int]] = None,
                        image: Optional[str] = None,
                        num_images: int = 0,
                        **kwargs) -> Dict:
    """``tools/fuse.py``'s one call: :func:`.core.fuse` for a detector
    (verified on ``image`` or a random ``shape`` input, default 800x1333) or
    an mmseg segmentor (a random ``shape`` input, default 512x512, and
    ``num_images`` test images, whose mIoU it reports). ``kwargs``: the
    other fields of :class:`.core.FuseOptions` (``analyze`` is for
    detectors and ignored for segmentors).

    Raises:
        FuseError: bad input (also an option of the other kind of model) or
            a failed check; nothing written.
    """
    cfg = load_config(config)
    task = task_for(cfg)
    if task.name != 'detector':
        kwargs.pop('analyze', None)
    return fuse(config, checkpoint, out_dir, FuseOptions(
        onnx=onnx, shape=shape, image=image, num_images=num_images,
        **kwargs), task=task)
