"""Verify: the end-to-end file's detections against torch's, image by
image; a one-stage detector must match exactly (within
:data:`.detections.BOX_ATOL` / :data:`.detections.SCORE_ATOL`)."""
import os
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from ..errors import FuseError
from .detections import BOX_ATOL, SCORE_ATOL, match_detections


def _max_or_none(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return max(values) if values else None


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
