"""The accuracy half of the whole-image study: how well the tiled
prediction of a trained detector scores over a whole held-out image
(against the per-tile score of the same detector), the ``accuracy`` section
of ``docs/results/whole_image.json``.

- :func:`accuracy_rows`: bbox mAP and DeepForest's recall / precision at IoU
  0.4 of the whole image (at each overlap asked for) and of its val tiles.
- :func:`accuracy_study`: those rows of a spec's detectors, written into
  the results JSON.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from .predict import predict_large, read_image
from .results import _load, _split_specs, _update_json, load_detectors
from .score import as_results, load_ground_truth, score_detections


def whole_image_score(detector, data_root: str, file_name: str,
                      patch: int = 400, overlap: float = 0.05,
                      batch: int = 1) -> Dict:
    """The tiled prediction of ``data_root/whole/file_name`` scored against
    all its boxes (``annotations/whole.json``), with the merge counts."""
    gt = load_ground_truth(osp.join(data_root, 'annotations', 'whole.json'),
                           [file_name])
    result = predict_large(osp.join(data_root, 'whole', file_name), detector,
                           patch, overlap, batch)
    score = score_detections(gt, as_results(
        result['dets'], result['labels'], gt['images'][0]['id']))
    return dict(score, counts=result['counts'], overlap=overlap, patch=patch,
                patches=len(result['patches']))


def tile_score(detector, data_root: str, source: str,
               split: str = 'val') -> Dict:
    """The same detector on the ``split`` tiles cut from ``source`` (each
    tile one patch, no merge), scored against the tiles' boxes (trees
    less than half inside a tile are ``iscrowd``: ignored)."""
    gt = load_ground_truth(osp.join(data_root, 'annotations',
                                    f'{split}.json'),
                           where=dict(source=source))
    results = []
    for im in gt['images']:
        img = read_image(osp.join(data_root, split, im['file_name']))
        (dets, labels), = detector([img])
        results += as_results(dets, labels, im['id'])
    return score_detections(gt, results)


def accuracy_rows(detectors: Dict[str, object], data_root: str,
                  file_name: str, overlaps: Sequence[float] = (0.05, ),
                  patch: int = 400, logger=None) -> List[Dict]:
    """Per detector (label -> :class:`~.runners.PatchDetector`): the whole
    image's score at each overlap and the per-tile score of its val
    tiles."""
    source = osp.splitext(file_name)[0]
    rows = []
    for label, det in detectors.items():
        row = dict(detector=label, description=det.description,
                   tiles=tile_score(det, data_root, source),
                   whole=[whole_image_score(det, data_root, file_name, patch,
                                            ov) for ov in overlaps])
        if logger is not None:
            logger.info(f'{label}: tiles mAP {row["tiles"]["bbox_mAP"]}, '
                        'whole ' + ', '.join(
                            f'overlap {w["overlap"]}: {w["bbox_mAP"]}'
                            for w in row['whole']))
        rows.append(row)
    return rows


def accuracy_study(out_file: str, specs: Sequence[Dict], data_root: str,
                   held_out_image: str, patch: int = 400,
                   overlaps: Sequence[float] = (0.05, 0.25),
                   threads: int = 1, logger=None,
                   extra: Optional[Dict] = None) -> Dict:
    """The ``accuracy`` section of the results JSON ``out_file``
    (:func:`accuracy_rows` of every detector of ``specs``, loader keys as
    :func:`load_detectors`, other keys copied into the row; ``extra`` and
    the machine's load averages at the start and the end added to the
    section); the other sections of the file are kept.

    Returns:
        dict: the whole file as written.
    """
    start = _load()
    load, meta = _split_specs(specs)
    rows = accuracy_rows(load_detectors(load, threads), data_root,
                         held_out_image, overlaps, patch, logger)
    for row in rows:
        row.update(meta[row['detector']])
    return _update_json(out_file, 'accuracy', dict(
        image=held_out_image, patch=patch, overlaps=list(overlaps),
        **(extra or {}), load_average=dict(start=start, end=_load()),
        rows=rows), threads)
