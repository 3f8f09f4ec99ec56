"""The demo (``make demo``, ``tools/demo.py``), start to finish on a CPU:
make the embedded dataset, train an ACResNet RetinaNet on it, evaluate, fuse
into a stock ResNet detector (ONNX exported and compared), draw detections,
deploy end to end through mmdeploy (boxes-out ONNX) and evaluate it, write a
summary.

:func:`run_demo` runs it and returns the summary (also written as
``summary.json``); :func:`summary_lines` formats it as the tool prints it.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from .errors import InputError
from .staging import write_json
from .tables import markdown_table

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'shapes',
                          'retinanet_acresnet18_fpn_shapes.py')


def demo_config(config: str, work_dir: str, data_root: str,
                max_iters: Optional[int] = None) -> Config:
    """``config`` on the shapes data in ``data_root`` (made there when
    missing), writing into ``work_dir``, ``max_iters`` long.

    Raises:
        InputError: the config is missing or ``max_iters`` is not positive.
    """
    from .datasets import make_shapes_dataset
    from .training import set_iterations
    if not osp.isfile(config):
        raise InputError(f'config not found: {config}')
    if max_iters is not None and max_iters < 1:
        raise InputError('`max_iters` must be positive')
    os.makedirs(work_dir, exist_ok=True)
    if not osp.isfile(osp.join(data_root, 'annotations', 'val.json')):
        print_log(f'[demo] making the shapes dataset in {data_root}',
                  logger='current')
        make_shapes_dataset(data_root)
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = root + 'annotations/val.json'
    if max_iters is not None:
        set_iterations(cfg, max_iters)
    return cfg


def _train(cfg: Config) -> Dict:
    """Train and evaluate ``cfg``; its metrics (mAP 0 when it detects
    nothing), checkpoint and seconds."""
    from .study.runs import complete_metrics
    from .training import last_checkpoint, train_and_evaluate
    print_log(f'[demo] training {cfg.model.backbone.type}-'
              f'{cfg.model.backbone.depth} RetinaNet for '
              f'{cfg.train_cfg.max_iters} iterations', logger='current')
    t0 = time.perf_counter()
    _, metrics = train_and_evaluate(cfg)
    metrics, _ = complete_metrics(metrics, cfg.val_evaluator)
    return dict(metrics=metrics, seconds=time.perf_counter() - t0,
                checkpoint=last_checkpoint(cfg.work_dir))


def _fuse_and_draw(cfg: Config, config_file: str, trained: Dict,
                   data_root: str, num_vis: int, title: str) -> Dict:
    """The fused detector (``fused/``, ONNX checked) and its detections on
    ``num_vis`` val images (``detections.png``)."""
    from .deploy.checkpoint import fuse_checkpoint
    print_log('[demo] fusing and exporting', logger='current')
    fused_dir = osp.join(cfg.work_dir, 'fused')
    report = fuse_checkpoint(config_file, trained['checkpoint'], fused_dir,
                             onnx=True, shape=(128, 128), force=True)
    val_dir = osp.join(data_root, 'val')
    images = sorted(os.listdir(val_dir))[:num_vis]
    report['detections_png'] = osp.join(cfg.work_dir, 'detections.png')
    from .visualize import draw_side_by_side
    draw_side_by_side([('fused detector', osp.join(fused_dir, 'fused_config.py'),
                        osp.join(fused_dir, 'fused.pth'))],
                      [osp.join(val_dir, n) for n in images],
                      osp.join(data_root, 'annotations', 'val.json'),
                      report['detections_png'], score_thr=0.3, scale=3,
                      title=f'{title}\nval images')
    return report


def _summary(config: str, cfg: Config, trained: Dict, fused: Dict,
             deployed: Dict, start: float) -> Dict:
    metrics, ev = trained['metrics'], deployed['eval']
    return dict(
        config=osp.relpath(config, ROOT),
        iterations=cfg.train_cfg.max_iters,
        bbox_mAP=metrics.get('coco/bbox_mAP'),
        bbox_mAP_50=metrics.get('coco/bbox_mAP_50'),
        # the deploy step evaluates the fused stock detector in torch
        bbox_mAP_fused=ev['torch']['bbox_mAP'],
        bbox_mAP_50_fused=ev['torch']['bbox_mAP_50'],
        bbox_mAP_onnx_end2end=ev['onnx']['bbox_mAP'],
        bbox_mAP_50_onnx_end2end=ev['onnx']['bbox_mAP_50'],
        latency_ms_torch_fused=deployed['latency_ms']['torch'],
        latency_ms_onnx_end2end=deployed['latency_ms']['onnx'],
        onnx_end2end_max_box_err_px=deployed['check']['max_box_err_px'],
        fuse_max_rel_err=fused['max_rel_err'],
        onnx_max_rel_err=max(r['max_rel_err'] for r in fused['onnx']),
        params_train=fused['before']['params'],
        params_deploy=fused['after']['params'],
        train_seconds=round(trained['seconds'], 1),
        fuse_seconds=round(fused['seconds'], 1),
        seconds=round(time.perf_counter() - start, 1),
        detections_png=fused['detections_png'],
        fused_files=fused['outputs'],
        deploy_files=deployed['outputs'])


def run_demo(config: str = DEFAULT_CONFIG,
             work_dir: str = 'work_dirs/demo',
             data_root: str = 'data/shapes',
             max_iters: Optional[int] = None,
             num_vis: int = 4) -> Dict:
    """Train, evaluate, fuse, draw, deploy end to end and evaluate.

    Args:
        config (str): the detector config. Defaults to the shapes
            ACResNet-18 RetinaNet.
        work_dir (str): where everything goes. Defaults to
            ``'work_dirs/demo'``.
        data_root (str): the shapes data (made when missing). Defaults to
            ``'data/shapes'``.
        max_iters (int, optional): the schedule length; None: the config's.
        num_vis (int): val images drawn. Defaults to 4.

    Returns:
        dict: the summary, also written to ``work_dir/summary.json``.

    Raises:
        AcnetError: bad input or a failed fusion / deployment check.
    """
    from .deploy.end2end import deploy_checkpoint
    start = time.perf_counter()
    cfg = demo_config(config, work_dir, data_root, max_iters)
    trained = _train(cfg)
    config_file = osp.join(work_dir, 'demo_config.py')
    cfg.dump(config_file)
    fused = _fuse_and_draw(cfg, config_file, trained, data_root, num_vis,
                           f'{osp.basename(config)} fused into a stock '
                           'ResNet')
    print_log('[demo] deploying end to end (mmdeploy ONNX, dets/labels) '
              'and evaluating it', logger='current')
    deployed = deploy_checkpoint(config_file, trained['checkpoint'],
                                 osp.join(work_dir, 'deploy'), evaluate=True,
                                 force=True)
    summary = _summary(config, cfg, trained, fused, deployed, start)
    write_json(osp.join(work_dir, 'summary.json'), summary)
    return summary


def summary_lines(summary: Dict) -> List[str]:
    """The demo summary as the markdown table ``tools/demo.py`` prints."""
    rows = [('bbox mAP', summary['bbox_mAP']),
            ('bbox mAP@0.5', summary['bbox_mAP_50']),
            ('bbox mAP (fused)', summary['bbox_mAP_fused']),
            ('bbox mAP@0.5 (fused)', summary['bbox_mAP_50_fused']),
            ('bbox mAP (end-to-end ONNX, onnxruntime)',
             summary['bbox_mAP_onnx_end2end']),
            ('bbox mAP@0.5 (end-to-end ONNX)',
             summary['bbox_mAP_50_onnx_end2end']),
            ('median latency per image, torch fused / ONNX (ms)',
             f'{summary["latency_ms_torch_fused"]:.1f} / '
             f'{summary["latency_ms_onnx_end2end"]:.1f}'),
            ('ONNX vs torch detections, max box err (px)',
             summary['onnx_end2end_max_box_err_px']),
            ('fused vs unfused max rel err', summary['fuse_max_rel_err']),
            ('ONNX vs torch max rel err', summary['onnx_max_rel_err']),
            ('params train / deploy', f'{summary["params_train"]:,} / '
             f'{summary["params_deploy"]:,}'),
            ('train seconds', summary['train_seconds']),
            ('total seconds', summary['seconds'])]
    return markdown_table(['metric', 'value'], [
        (name, f'{value:.3g}' if isinstance(value, float) else value)
        for name, value in rows])
