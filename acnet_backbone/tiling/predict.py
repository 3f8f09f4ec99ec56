"""Tiled prediction over one large image: patches with overlap, batched
through a :class:`~acnet_backbone.tiling.runners.PatchDetector`, boxes
shifted back and merged across patches (:mod:`.layout`), written as a
COCO-style JSON and a picture.

:func:`predict_large` is the loop; :func:`run_tiled_prediction` is the one
call of ``tools/predict_large.py`` (checks, loading, the loop, the staged
outputs).
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from .layout import (check_layout, merge_detections, patch_grid,
                     shift_boxes)

OUTPUTS = ('detections.json', 'detections.png')


def read_image(path: str) -> np.ndarray:
    """The image as a BGR ``uint8`` array ``[H, W, 3]`` (as mmcv's
    ``LoadImageFromFile`` reads it; an alpha channel is dropped).

    Raises:
        InputError: the file is missing or is not a readable image.
    """
    import mmcv
    if not osp.isfile(path):
        raise InputError(f'image not found: {path}')
    try:
        img = mmcv.imread(path, flag='color')
    except Exception as err:
        raise InputError(f'cannot read image {path}: '
                         f'{type(err).__name__}') from None
    if img is None or img.ndim != 3 or img.size == 0:
        raise InputError(f'cannot read image {path}: not an image file')
    return img


def predict_large(image, detector, patch: int = 400, overlap: float = 0.05,
                  batch: int = 1, iou_threshold: Optional[float] = None,
                  margin: float = 2.0, drop_cut: bool = True,
                  max_dets: Optional[int] = None,
                  progress: bool = False) -> Dict:
    """Detect objects over a whole image, patch by patch.

    Args:
        image (str | np.ndarray): an image file, or a BGR ``uint8`` array.
        detector (callable): patches -> per patch ``(dets [K, 5], labels
            [K])`` in patch pixels (a :class:`~.runners.PatchDetector`, or
            any callable with that contract).
        patch (int): patch side in pixels. Defaults to 400.
        overlap (float): overlap of neighbouring patches, a fraction of the
            patch in ``[0, 1)``. Defaults to 0.05.
        batch (int): patches per detector call. Defaults to 1.
        iou_threshold (float, optional): IoU of the NMS across patches;
            None: the detector's own (``detector.nms_iou``) or 0.5.
        margin (float): see :func:`~.layout.merge_detections`. Defaults
            to 2.0.
        drop_cut (bool): drop cut boxes another patch holds whole.
            Defaults to True.
        max_dets (int, optional): keep the highest-scoring this many.
        progress (bool): mmengine's progress bar over the patches.

    Returns:
        dict: ``dets`` ``[N, 5]`` (image pixels, by decreasing score),
        ``labels`` ``[N]``, ``width``, ``height``, ``patches`` (the layout),
        ``counts`` (:func:`~.layout.merge_detections`), ``seconds``
        (``read``, ``patches`` (cropping), the detector's ``preprocess``,
        ``network`` and ``postprocess`` where it reports them, ``merge``
        and ``total``) and the settings.

    Raises:
        InputError: a bad image, patch, overlap or batch.
    """
    check_layout(patch, overlap)
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InputError(f'`batch` {batch} must be at least 1')
    t_start = time.perf_counter()
    img = read_image(image) if isinstance(image, str) else image
    seconds = dict(read=time.perf_counter() - t_start, patches=0.0)
    height, width = img.shape[:2]
    patches = patch_grid(width, height, patch, overlap)
    if hasattr(detector, 'reset'):
        detector.reset()
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(patches))
    per_patch: List = []
    for start in range(0, len(patches), batch):
        chunk = patches[start:start + batch]
        t0 = time.perf_counter()
        crops = [np.ascontiguousarray(img[p.y0:p.y0 + p.height,
                                          p.x0:p.x0 + p.width])
                 for p in chunk]
        seconds['patches'] += time.perf_counter() - t0
        for (dets, labels), p in zip(detector(crops), chunk):
            per_patch.append((shift_boxes(dets, p), labels))
        if bar is not None:
            bar.update(len(chunk))
    seconds.update(getattr(detector, 'seconds', {}))
    if iou_threshold is None:
        iou_threshold = getattr(detector, 'nms_iou', 0.5)
    t0 = time.perf_counter()
    dets, labels, counts = merge_detections(
        per_patch, patches, iou_threshold, margin, drop_cut,
        max_dets=max_dets)
    seconds['merge'] = time.perf_counter() - t0
    seconds['total'] = time.perf_counter() - t_start
    return dict(dets=dets, labels=labels, width=int(width),
                height=int(height), patches=patches, counts=counts,
                seconds={k: round(v, 4) for k, v in seconds.items()},
                patch=int(patch), overlap=float(overlap), batch=int(batch),
                iou_threshold=float(iou_threshold), margin=float(margin),
                drop_cut=bool(drop_cut))


def coco_detections(result: Dict, file_name: str,
                    classes: Sequence[str], info: Optional[Dict] = None
                    ) -> Dict:
    """A :func:`predict_large` result as a COCO-style dict: ``images`` (the
    one image), ``categories`` (ids from 1), ``annotations`` (``bbox`` as
    x, y, w, h in image pixels, with ``score``; loads as COCO results too)
    and ``info`` (the settings, counts, seconds, and ``info``)."""
    anns = []
    for i, (d, lab) in enumerate(zip(result['dets'], result['labels']), 1):
        x1, y1, x2, y2, score = (float(v) for v in d)
        anns.append(dict(id=i, image_id=1, category_id=int(lab) + 1,
                         bbox=[round(x1, 2), round(y1, 2), round(x2 - x1, 2),
                               round(y2 - y1, 2)],
                         area=round((x2 - x1) * (y2 - y1), 2),
                         score=round(score, 5), iscrowd=0))
    meta = {k: result[k] for k in ('patch', 'overlap', 'batch',
                                   'iou_threshold', 'margin', 'drop_cut',
                                   'counts', 'seconds')}
    meta['num_patches'] = len(result['patches'])
    meta.update(info or {})
    return dict(info=meta,
                images=[dict(id=1, file_name=file_name,
                             width=result['width'], height=result['height'])],
                categories=[dict(id=i + 1, name=c)
                            for i, c in enumerate(classes)],
                annotations=anns)


def draw_detections(image: np.ndarray, result: Dict, path: str,
                    score_thr: float = 0.3, title: str = '') -> int:
    """A picture of the image with the patch grid (thin lines) and the
    boxes scoring at least ``score_thr``, written to ``path`` (staged).

    Returns:
        int: the boxes drawn.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..staging import save_figure
    h, w = image.shape[:2]
    scale = 12.0 / max(h, w)
    fig, ax = plt.subplots(figsize=(max(w * scale, 3), max(h * scale, 3)))
    ax.imshow(image[..., ::-1])
    for p in result['patches']:
        ax.add_patch(Rectangle((p.x0, p.y0), p.width, p.height, fill=False,
                               lw=0.4, ls='--', ec='white', alpha=0.6))
    shown = result['dets'][result['dets'][:, 4] >= score_thr]
    for x1, y1, x2, y2, _ in shown:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                               lw=0.7, ec='#ff2a2a'))
    ax.set_axis_off()
    ax.set_title(f'{title}{len(shown)} boxes with score >= {score_thr}',
                 fontsize=9)
    save_figure(fig, path, dpi=150, bbox_inches='tight')
    return int(len(shown))


def run_tiled_prediction(image: str, out_dir: str,
                         model_dir: Optional[str] = None,
                         config: Optional[str] = None,
                         checkpoint: Optional[str] = None,
                         backend: str = 'torch', precision: str = 'fp32',
                         patch: int = 400, overlap: float = 0.05,
                         batch: int = 1, threads: Optional[int] = None,
                         iou_threshold: Optional[float] = None,
                         draw_thr: float = 0.3, force: bool = False,
                         progress: bool = True, logger=None) -> Dict:
    """``tools/predict_large.py``'s one call: check everything, load the
    detector (:func:`~.runners.load_patch_detector`), predict
    (:func:`predict_large`) and write ``out_dir/detections.json``
    (:func:`coco_detections`) and ``out_dir/detections.png``
    (:func:`draw_detections`) together, or nothing.

    Returns:
        dict: the JSON's ``info`` plus ``outputs`` (the files written),
        ``detections`` and ``drawn``.

    Raises:
        InputError: bad input (see :func:`predict_large` and
            :func:`~.runners.load_patch_detector`), an output folder that
            cannot be written or holds outputs (without ``force``).
    """
    from mmengine.logging import MMLogger

    from ..staging import check_out_dir, staged_outputs, write_json
    from .runners import load_patch_detector
    logger = logger or MMLogger.get_current_instance()
    check_layout(patch, overlap)
    if batch < 1:
        raise InputError(f'`batch` {batch} must be at least 1')
    check_out_dir(out_dir, OUTPUTS, force)
    img = read_image(image)
    detector = load_patch_detector(model_dir, config, checkpoint, backend,
                                   precision, threads)
    logger.info(f'{osp.basename(image)}: {img.shape[1]}x{img.shape[0]}, '
                f'{detector.description["backend"]} '
                f'{detector.description["precision"]}')
    result = predict_large(img, detector, patch, overlap, batch,
                           iou_threshold, progress=progress)
    info = dict(image=image, detector=detector.description,
                megapixels=round(result['width'] * result['height'] / 1e6,
                                 4))
    coco = coco_detections(result, osp.basename(image), detector.classes,
                           info)
    with staged_outputs(out_dir, OUTPUTS) as tmp:
        write_json(osp.join(tmp, OUTPUTS[0]), coco)
        drawn = draw_detections(img, result, osp.join(tmp, OUTPUTS[1]),
                                draw_thr, f'{osp.basename(image)}: ')
    return dict(coco['info'], outputs=[os.path.join(out_dir, n)
                                       for n in OUTPUTS],
                detections=len(coco['annotations']), drawn=drawn)
