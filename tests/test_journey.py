"""The journey as a study whose replicate is the whole pipeline: every seed
pretrains (mmpretrain) and fine-tunes (mmdet) from that seed's checkpoint."""
import json
import os
import os.path as osp

from acnet_backbone.datasets import make_shapes_cls_dataset, make_shapes_dataset
from acnet_backbone.safe_load import safe_load
from acnet_backbone.study import run_journey

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# no loader worker processes in tests
LOADERS = {f'{loader}.{key}': value
           for loader in ('train_dataloader', 'val_dataloader')
           for key, value in (('num_workers', 0),
                              ('persistent_workers', False))}


def pretrain_options(cls_data):
    """The shapes classifiers at width 8 on ``cls_data``, 2 iterations."""
    return dict(LOADERS, **{
        'train_dataloader.dataset.data_root': f'{cls_data}/',
        'val_dataloader.dataset.data_root': f'{cls_data}/',
        'train_dataloader.batch_size': 4, 'train_cfg.max_iters': 2,
        'default_hooks.checkpoint.interval': 2,
        'model.backbone.base_channels': 8, 'model.head.in_channels': 64})


def finetune_options(det_data):
    """The shapes RetinaNets at width 8 on ``det_data``, 2 iterations."""
    root = f'{det_data}/'
    return dict(LOADERS, **{
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': f'{root}annotations/val.json',
        'train_dataloader.batch_size': 2, 'train_cfg.max_iters': 2,
        'default_hooks.checkpoint.interval': 2,
        'model.backbone.base_channels': 8,
        'model.neck.in_channels': [8, 16, 32, 64]})


def test_each_seed_finetunes_from_its_own_pretraining(tmp_path):
    cls_data, det_data = tmp_path / 'cls', tmp_path / 'det'
    make_shapes_cls_dataset(str(cls_data), 8, 4, 32, progress=False)
    make_shapes_dataset(str(det_data), 4, 2, 96, progress=False)
    pre_opts = pretrain_options(cls_data)
    ft_opts = finetune_options(det_data)
    work = tmp_path / 'journey'
    report = run_journey(
        str(work), [3, 4],
        pretrain=[osp.join(ROOT, 'configs', 'pretrain',
                           'fcnresnet18_shapes-cls.py')],
        finetune=[osp.join(ROOT, 'configs', 'shapes',
                           'retinanet_fcnresnet18_fpn_shapes-ft.py')],
        pretrain_options=pre_opts, finetune_options=ft_opts)
    assert set(report) >= {'runs', 'summary', 'differences', 'pretrain'}
    assert json.load(open(work / 'journey.json')) == json.loads(
        json.dumps(report))
    pre = {r['seed']: r for r in report['pretrain']['runs']}
    assert set(pre) == {3, 4}
    assert all('accuracy/top1' in r['metrics'] for r in pre.values())
    for run in report['runs']:
        seed = run['seed']
        ckpt = osp.join(str(work), 'pretrain', 'fcnresnet18_shapes-cls',
                        f'seed_{seed}', 'iter_2.pth')
        assert osp.abspath(pre[seed]['checkpoint']) == osp.abspath(ckpt)
        spec = json.load(open(osp.join(
            str(work), 'finetune', run['config'], f'seed_{seed}',
            'run.json')))
        assert spec['content']['model']['backbone']['init_cfg'][
            'checkpoint'] == ckpt
        assert spec['content']['randomness']['seed'] == seed
        assert 'bbox_mAP' in run
    # the two pretrainings differ: the seed reached the pretraining too
    import torch
    a, b = (safe_load(pre[s]['checkpoint'])['state_dict']
            for s in (3, 4))
    assert not torch.equal(a['backbone.conv1.weight'],
                           b['backbone.conv1.weight'])
    assert (work / 'journey.md').read_text().count('|') > 10


def test_segmentation_journey_shares_the_pretraining(tmp_path):
    """`make journey-seg`: the segmentors fine-tune from another journey's
    pretraining folder (reused, nothing pretrained twice) and are compared
    over mIoU."""
    from acnet_backbone.datasets import make_shapes_seg_dataset
    cls_data, seg_data = tmp_path / 'cls', tmp_path / 'seg'
    make_shapes_cls_dataset(str(cls_data), 8, 4, 32, progress=False)
    make_shapes_seg_dataset(str(seg_data), 4, 2, 64, progress=False)
    ft_opts = dict(LOADERS, **{
        'train_dataloader.dataset.data_root': f'{seg_data}/',
        'val_dataloader.dataset.data_root': f'{seg_data}/',
        'train_dataloader.batch_size': 2, 'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
        'model.backbone.base_channels': 8,
        'model.decode_head.in_channels': 64})
    shared = tmp_path / 'journey' / 'pretrain'
    pretrain = [osp.join(ROOT, 'configs', 'pretrain',
                         'fcnresnet18_shapes-cls.py')]
    finetune = [osp.join(ROOT, 'configs', 'seg',
                         'fcn32s_fcnresnet18_shapes-ft.py')]
    kwargs = dict(pretrain=pretrain, finetune=finetune, metric='mIoU',
                  pretrain_options=pretrain_options(cls_data),
                  finetune_options=ft_opts, pretrain_dir=str(shared))
    first = run_journey(str(tmp_path / 'seg_a'), [1], **kwargs)
    ckpt = shared / 'fcnresnet18_shapes-cls' / 'seed_1' / 'iter_2.pth'
    stamp = os.stat(ckpt).st_mtime_ns
    report = run_journey(str(tmp_path / 'seg_b'), [1], **kwargs)
    assert os.stat(ckpt).st_mtime_ns == stamp  # reused, not pretrained again
    assert report['pretrain']['runs'] == first['pretrain']['runs']
    for work in ('seg_a', 'seg_b'):
        assert not (tmp_path / work / 'pretrain').exists()
    (run, ) = report['runs']
    assert 0 <= run['mIoU'] <= 100 and 'mIoU' in run['metrics']
    assert report['summary'][0]['metric'] == 'mIoU'
    spec = json.load(open(tmp_path / 'seg_b' / 'finetune' / run['config'] /
                          'seed_1' / 'run.json'))
    assert spec['content']['model']['backbone']['init_cfg'][
        'checkpoint'] == str(ckpt)


def test_finetune_configs_are_checked_before_pretraining(tmp_path):
    """A segmentor compared over the detectors' default metric (a forgotten
    `--metric mIoU`), or a missing fine-tune config: one StudyError before
    any pretraining starts."""
    import pytest
    from acnet_backbone.datasets import make_shapes_seg_dataset
    from acnet_backbone.study import StudyError
    seg_data = tmp_path / 'seg'
    make_shapes_seg_dataset(str(seg_data), 2, 2, 64, progress=False)
    pretrain = [osp.join(ROOT, 'configs', 'pretrain',
                         'fcnresnet18_shapes-cls.py')]
    seg_ft = osp.join(ROOT, 'configs', 'seg',
                      'fcn-d8_fcnresnet18_shapes-ft.py')
    options = {f'{loader}.dataset.data_root': f'{seg_data}/'
               for loader in ('train_dataloader', 'val_dataloader')}
    work = tmp_path / 'journey'
    with pytest.raises(StudyError, match="does not return 'coco/bbox_mAP'"):
        run_journey(str(work), [0], pretrain=pretrain, finetune=[seg_ft],
                    finetune_options=options)
    with pytest.raises(StudyError, match='config not found'):
        run_journey(str(work), [0], pretrain=pretrain,
                    finetune=[str(tmp_path / 'missing.py')])
    assert not work.exists()


def test_routes_start_from_plain_acb_and_fused_pretrainings(tmp_path):
    """The starting-point study: one plain and one ACB pretraining per seed;
    a route fine-tunes from the plain one (branches added at fine-tuning),
    the ACB one, or the ACB one fused into a plain ResNet, which computes
    the ACB pretraining's backbone function."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from acnet_backbone.safe_load import safe_load
    from acnet_backbone.study import Route, run_routes
    cls_data, det_data = tmp_path / 'cls', tmp_path / 'det'
    make_shapes_cls_dataset(str(cls_data), 8, 4, 32, progress=False)
    make_shapes_dataset(str(det_data), 4, 2, 96, progress=False)
    ft_opts = finetune_options(det_data)
    shapes = osp.join(ROOT, 'configs', 'shapes')
    routes = [Route(start, osp.join(shapes, f'{name}.py')) for start, name in (
        ('plain', 'retinanet_fcnresnet18_fpn_shapes-ft'),
        ('plain', 'retinanet_acresnet18-online-add-g0_fpn_shapes-ft'),
        ('acb', 'retinanet_acresnet18_fpn_shapes-ft'),
        ('acb-fused', 'retinanet_fcnresnet18-fused-acb_fpn_shapes-ft'))]
    work = tmp_path / 'start'
    report = run_routes(str(work), [2], routes,
                        pretrain_options=pretrain_options(cls_data),
                        finetune_options=ft_opts)
    assert [r['start'] for r in report['routes']] == [
        'plain', 'plain', 'acb', 'acb-fused']
    assert len(report['runs']) == 4 and len(report['differences']) == 3
    pre = work / 'pretrain'
    plain_ckpt = pre / 'fcnresnet18_shapes-cls' / 'seed_2' / 'iter_2.pth'
    acb_run = pre / 'acresnet18_shapes-cls' / 'seed_2'
    fused = acb_run / 'backbone_fused.pth'
    want = [plain_ckpt, plain_ckpt, acb_run / 'iter_2.pth', fused]
    for run, ckpt in zip(report['runs'], want):
        spec = json.load(open(work / 'finetune' / run['config'] / 'seed_2' /
                              'run.json'))
        assert spec['content']['model']['backbone']['init_cfg'][
            'checkpoint'] == str(ckpt)
    # branches added at fine-tuning start at scale 0
    spec = json.load(open(work / 'finetune' / report['runs'][1]['config'] /
                          'seed_2' / 'run.json'))
    assert spec['content']['model']['backbone']['acb_gamma_init'] == 0.0
    # the fused start is a plain ResNet computing the ACB pretraining's
    # backbone: built here from the configs, not from the study's code
    cfg = Config.fromfile(str(acb_run / 'config.py'))
    acb = MODELS.build(dict(cfg.model.backbone, type='ACResNet',
                            init_cfg=None))
    state = safe_load(str(acb_run / 'iter_2.pth'))['state_dict']
    acb.load_state_dict({k[9:]: v for k, v in state.items()
                         if k.startswith('backbone.')})
    plain = MODELS.build(dict({k: v for k, v in cfg.model.backbone.items()
                               if not k.startswith('acb_')},
                              type='ResNet', init_cfg=None))
    fused_state = safe_load(str(fused))['state_dict']
    plain.load_state_dict({k[9:]: v for k, v in fused_state.items()},
                          strict=True)
    x = torch.randn(2, 3, 64, 64)
    acb.eval()
    plain.eval()  # mmdet's ResNet.train() returns None: no chaining
    with torch.no_grad():
        a, b = acb(x)[-1], plain(x)[-1]
    assert a.abs().max() > 0
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max()
    # a second call reuses everything (the fused file is not rewritten)
    stamp = os.stat(fused).st_mtime_ns
    again = run_routes(str(work), [2], routes,
                       pretrain_options=pretrain_options(cls_data),
                       finetune_options=ft_opts)
    assert os.stat(fused).st_mtime_ns == stamp
    assert again['runs'] == report['runs']


def test_route_input_is_checked(tmp_path):
    import pytest
    from acnet_backbone.study import (Route, StudyError, parse_route,
                                      run_routes)
    assert parse_route('acb-fused:a/b.py') == Route('acb-fused', 'a/b.py')
    for bad in ('a/b.py', 'fused:a/b.py', 'plain:'):
        with pytest.raises(StudyError, match='route'):
            parse_route(bad)
    ft = osp.join(ROOT, 'configs', 'shapes',
                  'retinanet_acresnet18_fpn_shapes-ft.py')
    pretrain = [osp.join(ROOT, 'configs', 'pretrain',
                         'fcnresnet18_shapes-cls.py')]
    with pytest.raises(StudyError, match='needs the ACB pretraining'):
        run_routes(str(tmp_path / 'w'), [0], [Route('acb', ft)],
                   pretrain=pretrain)
    with pytest.raises(StudyError, match='no route'):
        run_routes(str(tmp_path / 'w'), [0], [])
    assert not (tmp_path / 'w').exists()


def test_branch_stats_read_what_the_branches_did():
    """Scale-0 branches weigh nothing; raised scales and moved running
    statistics show per stage; 'online' mode has no statistics."""
    import torch
    from acnet_backbone import ACResNet
    from acnet_backbone.study.branches import branch_stats
    net = ACResNet(18, base_channels=8, acb_gamma_init=0.0)
    stats = branch_stats(net.state_dict())
    assert sorted(stats) == [1, 2, 3, 4]
    assert all(s['sites'] == 4 and s['kernel_share'] == 0 and
               s['scale_abs_mean'] == 0 and s['stats_moved'] == 0
               for s in stats.values())
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.startswith('layer3') and name.endswith('hor_bn'):
                module.weight.fill_(0.5)
                module.running_var.fill_(4.0)
    stats = branch_stats({f'backbone.{k}': v
                          for k, v in net.state_dict().items()})
    assert stats[3]['kernel_share'] > 0 and stats[3]['stats_moved'] == 3.0
    assert abs(stats[3]['scale_abs_mean'] - 0.25) < 1e-6  # hor 0.5, ver 0
    assert stats[2]['kernel_share'] == 0
    online = branch_stats(ACResNet(18, base_channels=8, acb_mode='online',
                                   acb_gamma_init=1 / 3).state_dict())
    assert abs(online[1]['scale_abs_mean'] - 1 / 3) < 1e-6
    assert online[1]['stats_moved'] is None and online[1]['kernel_share'] > 0
