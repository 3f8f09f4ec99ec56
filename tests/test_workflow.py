"""Configs, the dataset maker, train -> resume -> test through tools/, and
DDP over gloo around ACResNet."""
import glob
import hashlib
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config

from acnet_backbone.datasets import make_shapes_dataset
from acnet_backbone.deploy.checkpoint import build_detector
from acnet_backbone.safe_load import safe_load
from test_safe_load import _System  # noqa: E402  (a pickle running code)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# detector configs (configs/pretrain holds mmpretrain classifiers and
# configs/seg mmseg segmentors: their tests are in test_pretrain.py and
# test_segmentation.py)
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                      recursive=True)
                 if osp.relpath(p, osp.join(ROOT, 'configs')).split(osp.sep)[0]
                 not in ('pretrain', 'seg'))


def test_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    for arch in ('retinanet', 'faster-rcnn', 'mask-rcnn'):
        for backbone in ('acresnet50', 'fcnresnet50'):
            assert f'{arch}_{backbone}_fpn_1x_coco.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    assert 'acnet_backbone' in cfg.custom_imports['imports']
    model = build_detector(cfg)
    from mmdet.registry import MODELS
    # ACNet builds the wrapped backbone as a subclass of ACNet and the stock
    assert isinstance(model.backbone, MODELS.get(cfg.model.backbone.type))


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_dataset_maker_is_deterministic(tmp_path):
    a = make_shapes_dataset(str(tmp_path / 'a'), 6, 3, 96, seed=4,
                            progress=False)
    make_shapes_dataset(str(tmp_path / 'b'), 6, 3, 96, seed=4, progress=False)
    make_shapes_dataset(str(tmp_path / 'c'), 6, 3, 96, seed=5, progress=False)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')
    coco = json.load(open(a['train']))
    assert len(coco['images']) == 6 and len(coco['categories']) == 4
    assert coco['annotations']
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and x + w <= 96 and y + h <= 96


def _tool(name, *args, cwd):
    """Run tools/NAME, or the script at NAME when it is an absolute path."""
    script = name if osp.isabs(name) else osp.join(ROOT, 'tools', name)
    result = subprocess.run([sys.executable, script, *args],
                            capture_output=True, text=True, cwd=cwd,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_train_resume_test_through_tools(tmp_path):
    data = tmp_path / 'data'
    make_shapes_dataset(str(data), 8, 4, 96, seed=1, progress=False)
    config = osp.join(ROOT, 'configs', 'shapes',
                      'retinanet_acresnet18_fpn_shapes.py')
    root = str(data) + '/'
    common = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/val.json',
        f'test_evaluator.ann_file={root}annotations/val.json',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'model.backbone.base_channels=16', 'model.neck.in_channels=[16,32,64,128]',
        'default_hooks.logger.interval=1',
    ]
    work = tmp_path / 'work'
    sched = ['train_cfg.max_iters=3', 'train_cfg.val_interval=3',
             'default_hooks.checkpoint.interval=3',
             'param_scheduler.0.end=2', 'param_scheduler.1.begin=2',
             'param_scheduler.1.end=3', 'param_scheduler.1.T_max=1']
    _tool('train.py', config, '--work-dir', str(work), '--cfg-options',
          *common, *sched, cwd=str(tmp_path))
    assert (work / 'iter_3.pth').exists()
    longer = [s.replace('=3', '=5') if 'max_iters' in s or 'interval' in s
              else s for s in sched]
    result = _tool('train.py', config, '--work-dir', str(work), '--resume',
                   '--cfg-options', *common, *longer, cwd=str(tmp_path))
    log = result.stdout + result.stderr
    assert 'resumed' in log.lower()
    assert (work / 'iter_5.pth').exists()
    ckpt = safe_load(work / 'iter_5.pth')
    assert ckpt['meta']['iter'] == 5
    result = _tool('test.py', config, str(work / 'iter_5.pth'), '--work-dir',
                   str(work / 'test'), '--cfg-options', *common,
                   cwd=str(tmp_path))
    log = result.stdout + result.stderr
    assert 'Iter(test) [1/1]' in log  # 4 val images, batch 8
    # five iterations from scratch may predict nothing above the threshold:
    # then CocoMetric says so instead of printing numbers
    assert 'coco/bbox_mAP' in log or 'whole dataset is empty' in log

    # a checkpoint whose pickle runs code: both tools refuse it in one line
    # (exit 2) and nothing of it runs
    target = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'x': _System(str(target))},
               tmp_path / 'evil.pth')
    for args in (['test.py', config, str(tmp_path / 'evil.pth')],
                 ['train.py', config, '--resume', str(tmp_path / 'evil.pth')]):
        bad = subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools', args[0]), *args[1:],
             '--work-dir', str(tmp_path / 'evil'), '--cfg-options', *common,
             *longer], capture_output=True, text=True, cwd=str(tmp_path),
            timeout=900)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2, bad.stderr[-3000:]
        assert lines[-1].startswith('error: ') and 'refused to load' in \
            lines[-1] and 'Traceback' not in bad.stderr, bad.stderr[-3000:]
        assert not target.exists()

    # mmdet's own train.py (shipped in its wheel) resumes too: the configs'
    # custom_imports bring in acnet_backbone and with it the safe loading
    import mmdet
    mmdet_train = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                           'train.py')
    longest = [s.replace('=3', '=7') if 'max_iters' in s or 'interval' in s
               else s for s in sched]
    result = _tool(mmdet_train, config, '--work-dir', str(work), '--resume',
                   '--cfg-options', *common, *longest, cwd=str(tmp_path))
    assert 'resumed' in (result.stdout + result.stderr).lower()
    ckpt = safe_load(work / 'iter_7.pth')
    assert ckpt['meta']['iter'] == 7


def _ddp_worker(rank, world, store, x, out, mode):
    from acnet_backbone import ACResNet
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank,
                            world_size=world)
    torch.manual_seed(0)
    net = ACResNet(18, base_channels=8, acb_gamma_init=0.5, acb_mode=mode,
                   norm_eval=True, acb_norm_eval=True).train()  # train() applies norm_eval
    ddp = torch.nn.parallel.DistributedDataParallel(
        net, find_unused_parameters=False)
    part = x.chunk(world)[rank]
    for _ in range(2):  # a second step fails if any parameter got no grad
        ddp.zero_grad()
        sum(o.sum() for o in ddp(part)).backward()
    if rank == 0:
        torch.save({k: p.grad for k, p in net.named_parameters()}, out)
    dist.destroy_process_group()


@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_ddp_gloo_gradients_match_single_process(tmp_path, mode):
    from acnet_backbone import ACResNet
    x = torch.randn(4, 3, 32, 32)
    out = tmp_path / 'grads.pth'
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / 'store'), x, str(out), mode),
             nprocs=2, join=True)
    ddp_grads = torch.load(out, weights_only=True)
    torch.manual_seed(0)
    net = ACResNet(18, base_channels=8, acb_gamma_init=0.5, acb_mode=mode,
                   norm_eval=True, acb_norm_eval=True).train()
    # DDP averages the ranks' gradients: the loss of each half, averaged
    # every norm in eval mode (acb_norm_eval=True): per-sample computation, so
    # the two ranks' halves must reproduce the whole batch exactly (with the
    # branch BNs training, each rank would normalise over its own half, as
    # any BN does under DDP without SyncBN)
    (sum(o.sum() for o in net(x)) / 2).backward()
    assert set(ddp_grads) == {k for k, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert torch.allclose(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-5), name
