#!/usr/bin/env python
"""Deploy a trained detector end to end: fuse, verify, export through
mmdeploy to an ONNX file that returns boxes, check it in onnxruntime.

    python tools/deploy.py CONFIG CHECKPOINT --out-dir DIR [--eval]
        [--shape H W] [--num-images N] [--force] [--json FILE]
        [--int8 [--calib-images N] [--int8-scope conv|network]
         [--int8-activations u8|s8] [--calib-method M]] [--threads T]

Writes DIR/end2end.onnx (input `input`: the preprocessed [1, 3, H, W]
tensor; outputs `dets` [1, K, 5] and `labels` [1, K]), DIR/deploy_config.py
(the mmdeploy config used), DIR/fused.pth + DIR/fused_config.py (the stock
detector) and DIR/deploy_report.json. Nothing is written unless the fused
model matches the trained one and the ONNX detections match the torch ones.
With --int8 it also writes DIR/end2end_int8.onnx (same input and outputs):
onnxruntime static quantisation of the network's convolutions (QDQ, int8
per-channel weights, uint8 activations calibrated on N training images),
box decoding and NMS in float; --eval then reports FP32 and INT8 side by side.

An mmseg segmentor config is deployed as tools/fuse.py --onnx deploys it
(its end-to-end output is the per-pixel class scores): DIR/fused.onnx,
fused.pth and fused_config.py, checked against the trained model on a random
--shape input and on --num-images test images (--eval: the whole test set),
with their mIoU; --int8 and --threads are for detectors.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning)
# tracing mmdeploy's rewritten detector warns about every Python-side shape
# read; the ONNX file is checked numerically instead
warnings.filterwarnings('ignore', message='.*TracerWarning')
warnings.filterwarnings('ignore', module=r'mmdeploy\.|torch\.onnx|mmcv\.ops')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--eval', action='store_true', help='bbox mAP of '
                        'torch and ONNX on the test set, and latency')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='random input of this size for the fusion '
                        'check (default: the first test image)')
    parser.add_argument('--num-images', type=int, default=20,
                        help='test images for the ONNX check and latency')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='largest allowed relative fusion error')
    parser.add_argument('--force', action='store_true',
                        help='overwrite existing outputs')
    parser.add_argument('--json', help='also write the report to this file')
    parser.add_argument('--int8', action='store_true', help='also write '
                        'end2end_int8.onnx (onnxruntime static quantisation)')
    parser.add_argument('--calib-images', type=int, default=64, help='training '
                        'images that calibrate the INT8 activations')
    parser.add_argument('--int8-scope', choices=['conv', 'network'],
                        default='conv', help='quantise the convolutions, or '
                        'every quantisable op of the network (never the box '
                        'decoding and NMS)')
    parser.add_argument('--int8-activations', choices=['u8', 's8'],
                        default='u8', help='activation type (u8: fast on '
                        'x86 VNNI CPUs)')
    parser.add_argument('--calib-method', default='minmax',
                        choices=['minmax', 'percentile'],
                        help='activation range calibration')
    parser.add_argument('--threads', type=int, help='onnxruntime threads of '
                        'the check and latency sessions (default: its choice)')
    return parser.parse_args(argv)


def _fmt(value, spec='.3g'):
    return 'n/a' if value is None else format(value, spec)


def print_table(report):
    check = report['check']
    rows = [('fused vs trained, max rel err',
             f'{report["fuse_max_rel_err"]:.3g}'),
            ('ONNX vs torch, images / detections',
             f'{check["images"]} / {check["detections"]}'),
            ('ONNX vs torch, max box err (px)',
             _fmt(check['max_box_err_px'])),
            ('ONNX vs torch, max score err', _fmt(check['max_score_err']))]
    if check['mismatched_images']:
        rows.append(('ONNX vs torch, images that differ', ', '.join(
            os.path.basename(d['image']) for d in check['differing_images'])))
    # torch, FP32 ONNX and (with --int8) INT8 ONNX side by side
    names = [n for n in ('torch', 'onnx', 'onnx_int8')
             if n in report['latency_ms']]
    head = ' / '.join(dict(torch='torch', onnx='ONNX',
                           onnx_int8='INT8')[n] for n in names)
    lat = report['latency_ms']
    shape = 'x'.join(map(str, lat['input_shape'][-2:]))
    rows.append((f'median latency {head} (ms, {shape})',
                 ' / '.join(f'{lat[n]:.1f}' for n in names)))
    if 'eval' in report:
        for key in ('bbox_mAP', 'bbox_mAP_50'):
            rows.append((f'{key} {head}', ' / '.join(
                f'{report["eval"][n][key]:.3f}' for n in names)))
    if 'int8' in report:
        q = report['int8']
        rows.append(('INT8', f'{q["scope"]}, weights {q["weights"]}, '
                     f'activations {q["activations"]}, {q["calibrate_method"]}'
                     f' on {q["calib_images"]} training images, opset '
                     f'{q["opset"]}'))
        rows.append(('INT8 vs ONNX, detections found (IoU >= '
                     f'{q["vs_fp32"]["iou_thr"]})', _fmt(q['vs_fp32'][
                         'matched'], '.1%')))
    custom = report['onnx']['custom_ops']
    rows.append(('custom ops needed', ', '.join(custom) + ' (mmdeploy '
                 'onnxruntime op library)' if custom else 'none'))
    print('| check | value |\n| --- | --- |')
    for name, value in rows:
        print(f'| {name} | {value} |')


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.shape and min(args.shape) < 32:
        print(f'error: --shape {args.shape[0]} {args.shape[1]} is too small '
              '(at least 32 32)', file=sys.stderr)
        return 2
    for name in ('num_images', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f'error: --{name.replace("_", "-")} must be at least 1',
                  file=sys.stderr)
            return 2
    import acnet_backbone  # noqa: F401
    import torch
    warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
    from mmengine.logging import MMLogger

    from acnet_backbone.deploy.checkpoint import FuseError
    from acnet_backbone.deploy.end2end import deploy_any_checkpoint
    from acnet_backbone.staging import write_json
    logger = MMLogger.get_instance('acnet_deploy', log_level='INFO')
    try:
        report = deploy_any_checkpoint(
            args.config, args.checkpoint, args.out_dir, evaluate=args.eval,
            shape=tuple(args.shape) if args.shape else None,
            num_images=args.num_images, rtol=args.rtol, force=args.force,
            logger=logger, int8=args.int8, calib_images=args.calib_images,
            int8_options=dict(scope=args.int8_scope,
                              activations=args.int8_activations,
                              method=args.calib_method),
            threads=args.threads)
    except FuseError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if 'fused' in report:  # a segmentor
        from acnet_backbone.seg.deploy import summary_lines
        print('\n'.join(summary_lines(report)))
    else:
        print_table(report)
    for path in report['outputs']:
        print(f'wrote {path}')
    print(f'took {report["seconds"]:.1f} s')
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
