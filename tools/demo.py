#!/usr/bin/env python
"""The main job (`make demo`): make the embedded dataset, train an ACResNet
RetinaNet on it, evaluate, fuse into a stock ResNet detector, evaluate the
fused model, export ONNX and compare, draw detections, deploy end to end
through mmdeploy (boxes-out ONNX) and evaluate it, write a summary.

    python tools/demo.py [--config CONFIG] [--work-dir work_dirs/demo]
        [--max-iters N]
"""
import argparse
import os
import os.path as osp
import sys
import warnings
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'shapes',
                          'retinanet_acresnet18_fpn_shapes.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--max-iters', type=int,
                        help='override the schedule length')
    parser.add_argument('--num-vis', type=int, default=4,
                        help='val images to draw')
    return parser.parse_args(argv)


def draw(config, checkpoint, images, ann_file, out_file, classes, title,
         score_thr=0.3, scale=3):
    """Ground truth beside the (fused) model's detections on a few val images,
    drawn with mmdet's visualizer on images enlarged ``scale`` times, one row
    per image, the score threshold in the title; written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import mmcv
    import torch
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    from pycocotools.coco import COCO

    from acnet_backbone.staging import save_figure
    model = init_detector(config, checkpoint, device='cpu')
    coco = COCO(ann_file)
    by_name = {img['file_name']: img['id'] for img in coco.dataset['images']}
    vis = DetLocalVisualizer(name=f'demo_vis_{time.time_ns()}')
    vis.dataset_meta = dict(classes=classes, palette=model.dataset_meta.get(
        'palette') if model.dataset_meta else None)
    fig, axes = plt.subplots(len(images), 2, squeeze=False,
                             figsize=(8, 4 * len(images)))
    for row, path in zip(axes, images):
        img = mmcv.imread(path, channel_order='rgb')
        big = mmcv.imrescale(img, scale, interpolation='nearest')
        anns = coco.loadAnns(coco.getAnnIds(imgIds=by_name[osp.basename(path)]))
        gt = InstanceData(
            bboxes=torch.tensor([[a['bbox'][0], a['bbox'][1],
                                  a['bbox'][0] + a['bbox'][2],
                                  a['bbox'][1] + a['bbox'][3]] for a in anns],
                                dtype=torch.float32).reshape(-1, 4) * scale,
            labels=torch.tensor([a['category_id'] - 1 for a in anns]))
        pred = inference_detector(model, path).pred_instances
        pred = pred[pred.scores >= score_thr]
        pred.bboxes = pred.bboxes * scale
        sample = DetDataSample(gt_instances=gt, pred_instances=pred)
        for ax, which in zip(row, ('gt', 'pred')):
            vis.add_datasample('det', big, sample, draw_gt=which == 'gt',
                               draw_pred=which == 'pred', show=False,
                               pred_score_thr=score_thr)
            ax.imshow(vis.get_image())
            ax.set_axis_off()
        row[0].set_title(f'ground truth: {len(anns)} objects', fontsize=10)
        row[1].set_title(f'fused detector: {len(pred)} detections',
                         fontsize=10)
    fig.suptitle(f'{title}\nval images; detections with score >= '
                 f'{score_thr}', fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    save_figure(fig, out_file, dpi=90)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    import acnet_backbone  # noqa: F401
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    from acnet_backbone.datasets import make_shapes_dataset
    from acnet_backbone.staging import write_json
    from acnet_backbone.study.runs import complete_metrics
    from acnet_backbone.deploy.checkpoint import FuseError, fuse_checkpoint
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    from acnet_backbone.training import (last_checkpoint, set_iterations,
                                         train_and_evaluate)

    if not osp.isfile(args.config):
        print(f'error: config not found: {args.config}', file=sys.stderr)
        return 2
    if args.max_iters is not None and args.max_iters < 1:
        print('error: --max-iters must be positive', file=sys.stderr)
        return 2
    os.makedirs(args.work_dir, exist_ok=True)
    ann_val = osp.join(args.data_root, 'annotations', 'val.json')
    if not osp.isfile(ann_val):
        print(f'[demo] making the shapes dataset in {args.data_root}')
        make_shapes_dataset(args.data_root)

    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    data_root = args.data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].ann_file = data_root + 'annotations/val.json'
    if args.max_iters is not None:
        set_iterations(cfg, args.max_iters)
    iters = cfg.train_cfg.max_iters

    print(f'[demo] training {cfg.model.backbone.type}-'
          f'{cfg.model.backbone.depth} RetinaNet for {iters} iterations')
    t0 = time.perf_counter()
    _, metrics = train_and_evaluate(cfg)
    metrics, _ = complete_metrics(metrics, cfg.val_evaluator)  # mAP 0 if none
    train_s = time.perf_counter() - t0
    ckpt = last_checkpoint(args.work_dir)
    logger = MMLogger.get_current_instance()

    print('[demo] fusing and exporting')
    fused_dir = osp.join(args.work_dir, 'fused')
    try:
        report = fuse_checkpoint(
            _dump(cfg, args.work_dir),
            ckpt, fused_dir, onnx=True, shape=(128, 128), force=True,
            logger=logger)
    except FuseError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    val_dir = osp.join(args.data_root, 'val')
    images = sorted(os.listdir(val_dir))[:args.num_vis]
    vis_file = osp.join(args.work_dir, 'detections.png')
    draw(osp.join(fused_dir, 'fused_config.py'),
         osp.join(fused_dir, 'fused.pth'),
         [osp.join(val_dir, n) for n in images], ann_val, vis_file,
         cfg.metainfo['classes'],
         f'{osp.basename(args.config)} fused into a stock ResNet')

    print('[demo] deploying end to end (mmdeploy ONNX, dets/labels) and '
          'evaluating it')
    deploy_dir = osp.join(args.work_dir, 'deploy')
    try:
        deployed = deploy_checkpoint(
            _dump(cfg, args.work_dir), ckpt, deploy_dir, evaluate=True,
            force=True, logger=logger)
    except FuseError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1

    summary = dict(
        config=osp.relpath(args.config, ROOT),
        iterations=iters,
        bbox_mAP=metrics.get('coco/bbox_mAP'),
        bbox_mAP_50=metrics.get('coco/bbox_mAP_50'),
        # the deploy step evaluates the fused stock detector in torch
        bbox_mAP_fused=deployed['eval']['torch']['bbox_mAP'],
        bbox_mAP_50_fused=deployed['eval']['torch']['bbox_mAP_50'],
        bbox_mAP_onnx_end2end=deployed['eval']['onnx']['bbox_mAP'],
        bbox_mAP_50_onnx_end2end=deployed['eval']['onnx']['bbox_mAP_50'],
        latency_ms_torch_fused=deployed['latency_ms']['torch'],
        latency_ms_onnx_end2end=deployed['latency_ms']['onnx'],
        onnx_end2end_max_box_err_px=deployed['check']['max_box_err_px'],
        fuse_max_rel_err=report['max_rel_err'],
        onnx_max_rel_err=max(r['max_rel_err'] for r in report['onnx']),
        params_train=report['before']['params'],
        params_deploy=report['after']['params'],
        train_seconds=round(train_s, 1),
        fuse_seconds=round(report['seconds'], 1),
        seconds=round(time.perf_counter() - start, 1),
        detections_png=vis_file,
        fused_files=report['outputs'],
        deploy_files=deployed['outputs'])
    out = osp.join(args.work_dir, 'summary.json')
    write_json(out, summary)

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
    print('\n| metric | value |\n| --- | --- |')
    for name, value in rows:
        value = f'{value:.3g}' if isinstance(value, float) else value
        print(f'| {name} | {value} |')
    print(f'\nwrote {out} and {vis_file}')
    return 0


def _dump(cfg, work_dir):
    path = osp.join(work_dir, 'demo_config.py')
    cfg.dump(path)
    return path


if __name__ == '__main__':
    sys.exit(main())
