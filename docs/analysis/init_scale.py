"""Activation scale at initialisation of the three from-scratch shapes
backbones (plain ResNet-18, ACResNet-18 'bn' and 'online'): per stage the
output std, and per residual block the std of its output over the std of its
identity path, on one batch of 8 training images with BN in training mode
(the first step), over seeds 10-14. Run from the repository root:

    OMP_NUM_THREADS=1 python docs/analysis/init_scale.py
"""
import glob

import numpy as np
import torch
from mmdet.models.backbones.resnet import BasicBlock
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from PIL import Image

import acnet_backbone  # noqa: F401

CONFIGS = ('retinanet_fcnresnet18_fpn_shapes', 'retinanet_acresnet18_fpn_shapes',
           'retinanet_acresnet18-online_fpn_shapes')


def batch(cfg, n=8):
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    paths = sorted(glob.glob('data/shapes/train/*.png'))[:n]
    x = torch.stack([
        torch.from_numpy(np.array(Image.open(p).convert('RGB'))).permute(
            2, 0, 1).float() for p in paths
    ])
    if pre.get('bgr_to_rgb'):
        x = x.flip(1)  # PIL reads RGB; the configs expect BGR order first
    return (x - mean) / std


def main():
    register_all_modules()
    for name in CONFIGS:
        cfg = Config.fromfile(f'configs/shapes/{name}.py')
        x = batch(cfg)
        stages, ratios = [], []
        for seed in (10, 11, 12, 13, 14):
            torch.manual_seed(seed)
            net = MODELS.build(cfg.model.backbone)
            net.init_weights()
            net.train()

            def hook(block, inputs, output):
                identity = inputs[0] if block.downsample is None else \
                    block.downsample(inputs[0])
                ratios.append((output.std() / identity.std()).item())

            handles = [m.register_forward_hook(hook) for m in net.modules()
                       if isinstance(m, BasicBlock)]
            with torch.no_grad():
                stages.append([o.std().item() for o in net(x)])
            for h in handles:
                h.remove()
        print(f'{name}: stage output std (C2..C5) '
              f'{np.round(np.mean(stages, 0), 2).tolist()}, '
              f'block output / identity std {np.mean(ratios):.2f}')


if __name__ == '__main__':
    main()
