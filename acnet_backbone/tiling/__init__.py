"""Tiled prediction over whole large images (aerial orthomosaics): patches
with overlap through any runtime of the deploy path, boxes shifted back and
merged across patches, scored against a whole image's boxes, and timed
beside DeepForest's ``predict_tile``.

- :mod:`.layout`: the patch grid, shifting, the cut-box rule and the merge
  (mmcv's NMS).
- :mod:`.runners`: patch detectors in torch, onnxruntime and OpenVINO.
- :mod:`.predict`: :func:`predict_large` (the loop) and
  :func:`run_tiled_prediction` (``tools/predict_large.py``).
- :mod:`.score`: bbox mAP (pycocotools) and DeepForest's recall / precision
  at IoU 0.4 of a whole-image prediction.
- :mod:`.benchmark`: the whole-image accuracy and speed study
  (``docs/results/whole_image.json``) from a spec file (:mod:`.spec`), its
  halves in :mod:`.accuracy` and :mod:`.speed` (what they share in
  :mod:`.results`), its like-for-like detector in :mod:`.r50`;
  :mod:`.deepforest_peer` is the script the speed half runs in DeepForest's
  own virtualenv.

Example:
    >>> from acnet_backbone.tiling import load_patch_detector, predict_large
    >>> det = load_patch_detector('work_dirs/deploy', backend='ort')
    >>> result = predict_large('big.png', det, patch=400, overlap=0.05)
    >>> result['dets'].shape        # (N, 5): x1, y1, x2, y2, score
"""
from .layout import Patch, merge_detections, patch_grid, shift_boxes
from .predict import predict_large, run_tiled_prediction
from .runners import load_patch_detector

__all__ = ['Patch', 'load_patch_detector', 'merge_detections', 'patch_grid',
           'predict_large', 'run_tiled_prediction', 'shift_boxes']
