#!/usr/bin/env python
"""Detect objects over a whole large image (an aerial orthomosaic) patch by
patch, with a deployed detector in any runtime or a config and checkpoint
in torch.

    python tools/predict_large.py IMAGE (--model DEPLOY_DIR | CONFIG CHECKPOINT)
        [--backend torch|ort|openvino] [--precision fp32|int8|bf16]
        [--patch 400] [--overlap 0.05] [--batch 1] [--threads T]
        [--nms-iou IOU] [--draw-thr 0.3] --out-dir DIR [--force]

DEPLOY_DIR is a tools/deploy.py output folder (ort / openvino run its
end2end.onnx, or end2end_int8.onnx with --precision int8; torch runs its
fused.pth); CONFIG CHECKPOINT (a training config with its unfused
checkpoint, or fused_config.py with fused.pth) runs in torch. Patches
overlap by --overlap of their side; boxes are shifted back into the image, a
box cut by an inner patch edge is dropped where another patch holds it
whole, and mmcv's NMS merges the rest across patches. Writes
DIR/detections.json (COCO style: images, categories, annotations with
scores; info holds the settings and the seconds per step) and
DIR/detections.png, both or neither. The pipeline is
acnet_backbone.tiling.run_tiled_prediction.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning)

# the package's argument names in messages -> this tool's flags
FLAGS = dict(model_dir='--model', config='CONFIG', checkpoint='CHECKPOINT',
             backend='--backend', precision='--precision', patch='--patch',
             overlap='--overlap', batch='--batch', threads='--threads',
             force='--force')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('image', help='the large image')
    parser.add_argument('files', nargs='*', metavar='CONFIG CHECKPOINT',
                        help='a detector config and its checkpoint (torch)')
    parser.add_argument('--model', dest='model_dir', metavar='DEPLOY_DIR',
                        help='a tools/deploy.py output folder')
    parser.add_argument('--backend', default='torch',
                        choices=['torch', 'ort', 'openvino'],
                        help='runtime (ort: onnxruntime)')
    parser.add_argument('--precision', default='fp32',
                        choices=['fp32', 'int8', 'bf16'],
                        help='int8: end2end_int8.onnx (ort, openvino); '
                        'bf16: openvino on a CPU with native BF16')
    parser.add_argument('--patch', type=int, default=400,
                        help='patch side in pixels (at least 32)')
    parser.add_argument('--overlap', type=float, default=0.05,
                        help='overlap of neighbouring patches, a fraction '
                        'of the patch side in [0, 1)')
    parser.add_argument('--batch', type=int, default=1,
                        help='patches per runtime call')
    parser.add_argument('--threads', type=int,
                        help="runtime threads (default: the runtime's "
                        'choice)')
    parser.add_argument('--nms-iou', type=float, help='IoU of the NMS '
                        "across patches (default: the detector's own)")
    parser.add_argument('--draw-thr', type=float, default=0.3,
                        help='score of the boxes drawn in the picture')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--force', action='store_true',
                        help='overwrite existing outputs')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if len(args.files) not in (0, 2):
        print('error: give CONFIG and CHECKPOINT together (or --model '
              'DEPLOY_DIR)', file=sys.stderr)
        return 2
    config, checkpoint = args.files if args.files else (None, None)
    import acnet_backbone  # noqa: F401 (registers the backbones)
    from mmengine.logging import MMLogger

    from acnet_backbone.errors import AcnetError, flag_message
    from acnet_backbone.tiling import run_tiled_prediction
    logger = MMLogger.get_instance('acnet_predict_large', log_level='INFO')
    try:
        info = run_tiled_prediction(
            args.image, args.out_dir, model_dir=args.model_dir,
            config=config, checkpoint=checkpoint, backend=args.backend,
            precision=args.precision, patch=args.patch,
            overlap=args.overlap, batch=args.batch, threads=args.threads,
            iou_threshold=args.nms_iou, draw_thr=args.draw_thr,
            force=args.force, progress=not args.no_progress, logger=logger)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    s, c = info['seconds'], info['counts']
    print(f'\n{info["num_patches"]} patches of {info["patch"]} px, overlap '
          f'{info["overlap"]}: {c["detections"]} detections, '
          f'{c["cut_dropped"]} cut boxes dropped, {c["kept"]} kept after NMS '
          f'(IoU {info["iou_threshold"]}); {info["drawn"]} drawn (score >= '
          f'{args.draw_thr})')
    steps = ', '.join(f'{k} {v:.2f}' for k, v in s.items() if k != 'total')
    print(f'{s["total"]:.2f} s ({s["total"] / info["megapixels"]:.2f} s per '
          f'megapixel): {steps}')
    for path in info['outputs']:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
