"""FP32 vs INT8 deployment of many trained detectors: bbox mAP and latency
of each run (``tools/deploy.py --int8 --eval``'s pipeline) and the INT8 drop
per config with its Student-t interval."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..staging import write_json
from .report import mean_std, t_interval


def _run_label(config: str, checkpoint: str, index: int) -> str:
    """A folder name for one study run: config name, checkpoint folder and
    index (unique within the study)."""
    name = osp.splitext(osp.basename(config))[0]
    parent = osp.basename(osp.dirname(osp.abspath(checkpoint)))
    return f'{name}/{index:02d}_{parent}'


def _read_report(path: str) -> Optional[Dict]:
    """A finished INT8 deploy report, or None."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        report = json.load(f)
    return report if 'onnx_int8' in report.get('eval', {}) else None


def _row(run: Dict, out_dir: str, report: Dict) -> Dict:
    """One study row: the run, its FP32 and INT8 mAP, drop and latency, and
    the INT8 weight range chosen for the CPU with that CPU (model and native
    arithmetic; both None in older reports)."""
    fp32, q = report['eval']['onnx'], report['eval']['onnx_int8']
    lat = report['latency_ms']
    return dict(
        run, out_dir=out_dir,
        int8_weight_bits=report.get('int8', {}).get('weight_bits'),
        cpu=report.get('int8', {}).get('cpu'),
        bbox_mAP_fp32=fp32['bbox_mAP'],
        bbox_mAP_int8=q['bbox_mAP'],
        drop=round(fp32['bbox_mAP'] - q['bbox_mAP'], 4),
        latency_ms_fp32=lat['onnx'], latency_ms_int8=lat['onnx_int8'],
        latency_ratio=round(lat['onnx_int8'] / lat['onnx'], 3))


def int8_summary(rows: Sequence[Dict]) -> List[Dict]:
    """Per run ``name``: mean FP32 and INT8 mAP, mean drop with its 95%
    Student-t interval, median INT8/FP32 latency ratio."""
    summary = []
    for name in dict.fromkeys(r['name'] for r in rows):
        group = [r for r in rows if r['name'] == name]
        drops = [r['drop'] for r in group]
        summary.append(dict(
            name=name, n=len(group),
            bbox_mAP_fp32_mean=mean_std([r['bbox_mAP_fp32']
                                         for r in group])[0],
            bbox_mAP_int8_mean=mean_std([r['bbox_mAP_int8']
                                         for r in group])[0],
            drop_mean=mean_std(drops)[0], drop_ci95=t_interval(drops),
            latency_ratio_median=float(np.median(
                [r['latency_ratio'] for r in group]))))
    return summary


def int8_study(runs: Sequence[Union[Tuple[str, str], Dict]],
               work_dir: str,
               calib_images: int = 64,
               num_images: int = 20,
               threads: Optional[int] = 1,
               int8_options: Optional[Dict] = None,
               force: bool = False,
               logger=None) -> Dict:
    """FP32 vs INT8 bbox mAP and latency of many trained detectors.

    Each run is deployed with :func:`~acnet_backbone.deploy.end2end.
    deploy_checkpoint` (``int8=True, evaluate=True``) into
    ``work_dir/<config name>/<NN>_<checkpoint folder>``; a run whose report
    exists already is read back (unless ``force``), so an interrupted study
    resumes. The summary gives, per config, the mean FP32 and INT8 mAP, the
    mean INT8 drop (FP32 - INT8) with its 95% Student-t interval over the
    runs, and the median INT8/FP32 latency ratio.

    Example:
        >>> int8_study([('configs/shapes/retinanet_acresnet18_fpn_shapes.py',
        ...              'work_dirs/study/acb/seed_0/iter_1500.pth'), ...],
        ...            'work_dirs/int8_study')['summary'][0]['drop_mean']

    Args:
        runs (list): ``(config, checkpoint)`` pairs, or dicts with those
            keys and optionally ``seed`` and ``name`` (copied into the rows;
            the summary groups runs by ``name``, default the config file's
            name, so per-run config files of one study group together).
        work_dir (str): the study folder; ``int8_study.json`` goes there.
        calib_images (int): training images for calibration. Defaults to 64.
        num_images (int): test images for the check and the latency.
            Defaults to 20.
        threads (int, optional): onnxruntime threads of the latency
            sessions. Defaults to 1.
        int8_options (dict, optional): ``quantize_end2end`` options.
        force (bool): redo runs that have a report. Defaults to False.
        logger: an ``MMLogger``; None: the current one.

    Returns:
        dict: ``runs`` (one row per run) and ``summary`` (one row per
        config), also written to ``work_dir/int8_study.json``.
    """
    from ..deploy import end2end
    rows = []
    for i, run in enumerate(runs):
        run = dict(run) if isinstance(run, dict) else dict(
            config=run[0], checkpoint=run[1])
        run.setdefault('name', osp.splitext(osp.basename(run['config']))[0])
        out_dir = osp.join(work_dir, _run_label(run['config'],
                                                run['checkpoint'], i))
        report = None if force else _read_report(
            osp.join(out_dir, 'deploy_report.json'))
        if report is None:
            report = end2end.deploy_checkpoint(
                run['config'], run['checkpoint'], out_dir, evaluate=True,
                num_images=num_images, force=True, logger=logger, int8=True,
                calib_images=calib_images, int8_options=int8_options,
                threads=threads)
        rows.append(_row(run, out_dir, report))
    result = dict(runs=rows, summary=int8_summary(rows))
    os.makedirs(work_dir, exist_ok=True)
    write_json(osp.join(work_dir, 'int8_study.json'), result)
    return result
