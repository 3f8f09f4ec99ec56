"""The metric keys an mmengine evaluator config returns, and the metrics of
a run completed where mmdet's CocoMetric returned none (no detection at
all). Used by training studies and by the deploy evaluations alike, so it
sits below both."""
from typing import Dict, List, Optional, Tuple


def _metric_list(evaluator) -> List[Dict]:
    if isinstance(evaluator, (list, tuple)):
        return [dict(e) for e in evaluator]
    evaluator = dict(evaluator)
    if evaluator.get('type', '').split('.')[-1] == 'Evaluator':
        return _metric_list(evaluator.get('metrics', []))
    return [evaluator]


def _as_list(value, default):
    if value is None:
        return list(default)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def expected_metric_keys(evaluator) -> Optional[List[str]]:
    """The keys that the evaluator config will return, for the metrics this
    project knows (mmdet's CocoMetric, mmseg's IoUMetric, mmpretrain's
    Accuracy); None when one of them is of another type (checked after the
    run instead)."""
    keys = []
    for metric in _metric_list(evaluator):
        kind = str(metric.get('type', '')).split('.')[-1]
        if kind == 'CocoMetric':
            prefix = metric.get('prefix') or 'coco'
            for m in _as_list(metric.get('metric'), ['bbox']):
                if m == 'proposal_fast':
                    sizes = _as_list(metric.get('proposal_nums'),
                                     (100, 300, 1000))
                    keys += [f'{prefix}/AR@{n}' for n in sizes]
                elif m == 'proposal':
                    keys += [f'{prefix}/{k}' for k in (
                        'AR@100', 'AR@300', 'AR@1000', 'AR_s@1000',
                        'AR_m@1000', 'AR_l@1000')]
                else:
                    keys += [f'{prefix}/{m}_{k}' for k in (
                        'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m',
                        'mAP_l')]
        elif kind == 'IoUMetric':
            prefix = metric.get('prefix')
            names = ['aAcc']
            for m in _as_list(metric.get('iou_metrics'), ['mIoU']):
                names += ({'mIoU': ['mIoU', 'mAcc'],
                           'mDice': ['mDice', 'mAcc'],
                           'mFscore': ['mFscore', 'mPrecision',
                                       'mRecall']}.get(m, [m]))
            keys += [f'{prefix}/{n}' if prefix else n for n in names]
        elif kind == 'Accuracy':
            prefix = metric.get('prefix') or 'accuracy'
            keys += [f'{prefix}/top{k}'
                     for k in _as_list(metric.get('topk'), (1, ))]
        else:
            return None
    return sorted(set(keys))


def complete_metrics(metrics: Dict, evaluator) -> Tuple[Dict, bool]:
    """Every metric the evaluator returned, and whether a COCO evaluation
    found no detection at all. mmdet's CocoMetric returns none of a
    family's keys (``coco/bbox_*``) when no image has a detection above the
    score threshold (an early, untrained model): those get 0 and the run
    ``no_detections=True``."""
    out = dict(metrics)
    empty = False
    for key in expected_metric_keys(evaluator) or []:
        family = key.split('_mAP')[0] if '_mAP' in key else None
        if family and not any(k.startswith(family + '_') for k in metrics):
            out[key] = 0.0
            empty = True
    return out, empty
