#!/usr/bin/env python
"""Deploy a trained detector or mmseg segmentor end to end: fuse, verify,
export to ONNX (a detector through mmdeploy, to a file that returns boxes)
and check the file in onnxruntime (with --backend openvino in OpenVINO too).

    python tools/deploy.py CONFIG CHECKPOINT --out-dir DIR [--eval]
        [--shape H W] [--num-images N] [--force] [--json FILE]
        [--int8 [--calib-images N] [--int8-scope conv|network]
         [--int8-activations u8|s8] [--calib-method M] [--int8-weight-bits B]]
        [--threads T] [--backend onnxruntime|openvino
         [--precision fp32|bf16|int8 ...] [--save-ir]]

Writes DIR/end2end.onnx (input `input`: the preprocessed [1, 3, H, W]
tensor; outputs `dets` [1, K, 5] and `labels` [1, K]), DIR/deploy_config.py,
DIR/fused.pth + DIR/fused_config.py (the stock detector) and
DIR/deploy_report.json, only when the fused model matches the trained one and
the ONNX detections the torch ones; --int8 adds DIR/end2end_int8.onnx (static
QDQ quantisation of the convolutions, decoding and NMS in float); --backend
openvino also runs the files in OpenVINO at each --precision (--save-ir:
DIR/end2end.xml/.bin). An mmseg segmentor gets what tools/fuse.py --onnx
writes (DIR/fused.onnx, the mIoU of trained, fused and ONNX models; --eval:
the whole test set), with OpenVINO fp32/bf16 mIoU and latency on --backend
openvino. The pipeline is acnet_backbone.deploy.end2end.deploy_any_checkpoint.
"""
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

# the package's argument names in messages -> this tool's flags
FLAGS = dict(force='--force', int8='--int8', threads='--threads',
             num_images='--num-images', shape='--shape', save_ir='--save-ir',
             rtol='--rtol', calib_images='--calib-images', evaluate='--eval',
             backend='--backend', precisions='--precision')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    from acnet_backbone.deploy.backends import ALL_PRECISIONS, backend_names
    parser = tool_parser(__doc__)
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
    parser.add_argument('--calib-method', default='minmax', help='activation '
                        'range calibration', choices=['minmax', 'percentile'])
    parser.add_argument('--int8-weight-bits', type=int, choices=[7, 8],
                        help='7 on x86 without VNNI (default: this CPU\'s)')
    parser.add_argument('--threads', type=int, help='onnxruntime threads of '
                        'the check and latency sessions (default: its choice)')
    parser.add_argument('--backend', choices=backend_names(),
                        default='onnxruntime', help='openvino: also run the '
                        'end-to-end files in OpenVINO (check, latency, mAP)')
    parser.add_argument('--precision', nargs='+', dest='precisions',
                        choices=ALL_PRECISIONS, help='precisions to '
                        'run (default: fp32; openvino: every one this CPU '
                        'runs natively); int8 implies --int8')
    parser.add_argument('--save-ir', action='store_true', help='openvino: '
                        'also write the files as OpenVINO IR (.xml/.bin)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)  # imports acnet_backbone (its registrations)
    import torch
    warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
    from mmengine.logging import MMLogger

    from acnet_backbone.deploy import core, end2end
    from acnet_backbone.errors import AcnetError, flag_message
    from acnet_backbone.staging import write_json
    logger = MMLogger.get_instance('acnet_deploy', log_level='INFO')
    try:
        report = end2end.deploy_any_checkpoint(
            args.config, args.checkpoint, args.out_dir, evaluate=args.eval,
            shape=tuple(args.shape) if args.shape else None,
            num_images=args.num_images, rtol=args.rtol, force=args.force,
            logger=logger, int8=args.int8, calib_images=args.calib_images,
            int8_options=dict(scope=args.int8_scope,
                              activations=args.int8_activations,
                              method=args.calib_method, reduce_range={
                                  7: True, 8: False}.get(
                                      args.int8_weight_bits)),
            threads=args.threads, backend=args.backend,
            precisions=args.precisions, save_ir=args.save_ir)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    lines = core.summary_lines if 'fused' in report else end2end.summary_lines
    print('\n'.join(lines(report)))
    for path in report['outputs']:
        print(f'wrote {path}')
    print(f'took {report["seconds"]:.1f} s')
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
