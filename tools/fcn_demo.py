#!/usr/bin/env python
"""Classify an image with a fully convolutional ResNet and draw where the top
class is seen.

    python tools/fcn_demo.py IMAGE --checkpoint CKPT [--depth 18]
        [--out heatmap.png] [--window 7]

CKPT is a torchvision classification checkpoint file (or a torchvision://
name where the network is reachable). Prints the top-5 ImageNet classes of
the global logits and writes a PNG overlaying the dense sliding-window score
map of the top class on the image.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--depth', type=int, default=18,
                        choices=[18, 34, 50, 101, 152])
    parser.add_argument('--out', default='heatmap.png')
    parser.add_argument('--window', type=int, default=7,
                        help='sliding window of the dense map, in stride-32 '
                        'cells')
    parser.add_argument('--size', type=int, default=448,
                        help='shorter image side fed to the network')
    return parser.parse_args(argv)


def class_names():
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'acnet_backbone', 'data', 'imagenet_classes.txt')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.image):
        print(f'error: image not found: {args.image}', file=sys.stderr)
        return 2
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint}',
              file=sys.stderr)
        return 2
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image, UnidentifiedImageError

    from mmengine.logging import MMLogger

    from acnet_backbone import FCNResNet
    from acnet_backbone.staging import save_figure
    MMLogger.get_instance('fcn_demo', log_level='WARNING')
    try:
        img = Image.open(args.image).convert('RGB')
    except (UnidentifiedImageError, OSError) as err:
        print(f'error: cannot read image {args.image}: {err}',
              file=sys.stderr)
        return 2
    scale = args.size / min(img.size)
    img = img.resize((max(32, round(img.width * scale)),
                      max(32, round(img.height * scale))), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    x = torch.from_numpy((arr - MEAN) / STD).permute(2, 0, 1)[None].float()

    names = class_names()
    init = dict(type='Pretrained', checkpoint=args.checkpoint)
    net = FCNResNet(args.depth, include_top=True, num_classes=len(names),
                    top_pool='global', init_cfg=init)
    try:
        net.init_weights()
    except Exception as err:  # a file that is not a checkpoint, a bad pickle
        print(f'error: cannot load {args.checkpoint}: '
              f'{str(err).splitlines()[0] if str(err) else type(err).__name__}',
              file=sys.stderr)
        return 2
    net.eval()
    with torch.no_grad():
        probs = net(x)[0, :, 0, 0].softmax(0)
        net.top_pool = args.window
        try:
            dense = net(x)[0].softmax(0)
        except ValueError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
    top = probs.topk(5)
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f'{p:7.3f}  {names[i]}')
    best = int(top.indices[0])
    heat = F.interpolate(dense[best][None, None], size=arr.shape[:2],
                         mode='bilinear', align_corners=False)[0, 0].numpy()

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 6 * arr.shape[0] / arr.shape[1]))
    ax.imshow(arr)
    overlay = ax.imshow(heat, cmap='jet', alpha=0.45)
    fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f'{names[best]} ({float(top.values[0]):.2f}): '
                 f'{args.window}x{args.window}-cell window scores')
    ax.axis('off')
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    save_figure(fig, args.out, dpi=100, bbox_inches='tight')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
