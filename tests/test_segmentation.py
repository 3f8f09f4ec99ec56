"""Semantic segmentation in mmseg: the shapes masks, the FCN-32s head, the
configs (FCN-32s and d8 FCN, plain and ACB backbones) trained a few
iterations, and the fused, exported segmentor; every bad input refused with
one line and nothing written."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from acnet_backbone.datasets import (SEG_CLASSES,  # noqa: E402
                                     make_shapes_seg_dataset)
from acnet_backbone.deploy.backends.openvino import \
    openvino_version  # noqa: E402
from acnet_backbone.deploy.checkpoint import FuseError  # noqa: E402
from acnet_backbone.seg import (CheckSegMap, FCN32sHead,  # noqa: E402
                                SegMapError)
from acnet_backbone.seg.deploy import (SegLogits,  # noqa: E402
                                       build_segmentor, check_predictions,
                                       fuse_segmentor_checkpoint,
                                       is_segmentor_config, onnx_predictor,
                                       stock_seg_config)
from acnet_backbone.safe_load import safe_load  # noqa: E402
from acnet_backbone.testing import import_blocker, randomize_bn  # noqa: E402
from test_workflow import _digest  # noqa: E402  (the tree digest)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HAS_OPENVINO = openvino_version() is not None
SEG_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'seg', '*.py')))
FCN32S_ACB = osp.join(ROOT, 'configs', 'seg', 'fcn32s_acresnet18_shapes.py')
D8_ACB = osp.join(ROOT, 'configs', 'seg', 'fcn-d8_acresnet18_shapes.py')
D8_PLAIN = osp.join(ROOT, 'configs', 'seg', 'fcn-d8_fcnresnet18_shapes.py')


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_seg')
    make_shapes_seg_dataset(str(root), 6, 4, 64, seed=3, progress=False)
    return str(root)


# ------------------------------------------------------------- the data
def test_seg_dataset_is_deterministic_and_consistent(seg_data, tmp_path):
    make_shapes_seg_dataset(str(tmp_path / 'b'), 6, 4, 64, seed=3,
                            progress=False)
    make_shapes_seg_dataset(str(tmp_path / 'c'), 6, 4, 64, seed=4,
                            progress=False)
    assert _digest(seg_data) == _digest(str(tmp_path / 'b'))
    assert _digest(seg_data) != _digest(str(tmp_path / 'c'))
    for split, num in (('train', 6), ('val', 4)):
        with open(osp.join(seg_data, 'splits', f'{split}.txt')) as f:
            names = f.read().split()
        assert names == [f'{split}_{i:05d}' for i in range(num)]
        for name in names:
            img = np.asarray(Image.open(
                osp.join(seg_data, 'img_dir', split, f'{name}.png')))
            mask = np.asarray(Image.open(
                osp.join(seg_data, 'ann_dir', split, f'{name}.png')))
            assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
            assert mask.dtype == np.uint8
            assert set(np.unique(mask)) <= set(range(len(SEG_CLASSES)))
            # every scene has background and at least one visible shape
            assert (mask == 0).any() and (mask > 0).any()


def test_seg_masks_are_the_painted_shapes(tmp_path):
    """A label changes only where the painted image changes: inside each
    shape the pixels are its texture, so the mask follows the drawing."""
    from acnet_backbone.datasets.shapes import _label_map, _scene
    canvas, shapes = _scene(np.random.default_rng(7), 96)
    labels = _label_map(96, shapes)
    x, y, w, h, cls_id, mask = shapes[-1]  # painted last: fully visible
    inside = np.asarray(mask) > 0
    assert (labels[y:y + h, x:x + w][inside] == cls_id + 1).all()
    assert (labels > 0).sum() <= sum(
        int((np.asarray(m) > 0).sum()) for *_, m in shapes)


def test_make_shapes_dataset_tool_seg(tmp_path):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        from make_shapes_dataset import main
    finally:
        sys.path.pop(0)
    out = tmp_path / 'seg'
    assert main(['--task', 'seg', '--out', str(out), '--train', '2', '--val',
                 '1', '--size', '64']) == 0
    assert sorted(os.listdir(out)) == ['ann_dir', 'img_dir', 'splits']
    assert len(os.listdir(out / 'ann_dir' / 'train')) == 2


# ------------------------------------------------------- the label check
def _results(seg, img_hw=(4, 4)):
    return dict(img=np.zeros((*img_hw, 3), np.uint8), gt_seg_map=seg,
                seg_map_path='ann_dir/val/x.png', img_path='img_dir/val/x.png')


def test_check_seg_map_accepts_classes_and_ignore():
    seg = np.array([[0, 1, 4, 255]] * 4, np.uint8)
    assert CheckSegMap(num_classes=5)(_results(seg)) is not None


@pytest.mark.parametrize('seg, img_hw, words', [
    (np.full((4, 4), 7, np.uint8), (4, 4), ['outside the 5 classes', '7']),
    (np.zeros((4, 5), np.uint8), (4, 4), ['4x5', '4x4']),
])
def test_check_seg_map_refuses_in_one_line(seg, img_hw, words):
    with pytest.raises(SegMapError) as err:
        CheckSegMap(num_classes=5)(_results(seg, img_hw))
    message = str(err.value)
    assert len(message.splitlines()) == 1 and 'ann_dir/val/x.png' in message
    assert all(w in message for w in words)


def test_dataset_refuses_bad_mask(seg_data, tmp_path):
    """The configs' pipeline stops at a mask with a label beyond the
    classes, naming the file (before any loss sees it)."""
    import shutil

    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    root = tmp_path / 'bad'
    shutil.copytree(seg_data, root)
    path = root / 'ann_dir' / 'train' / 'train_00000.png'
    mask = np.asarray(Image.open(path)).copy()
    mask[0, 0] = 9
    Image.fromarray(mask).save(path)
    cfg = Config.fromfile(FCN32S_ACB)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(root)
    dataset = DATASETS.build(ds_cfg)
    assert dataset.metainfo['classes'] == SEG_CLASSES
    with pytest.raises(SegMapError, match='train_00000.png has labels'):
        dataset[0]



def test_train_tool_reports_a_bad_mask_in_one_line(seg_data, tmp_path):
    """tools/train.py on a set with a bad mask, read in a DataLoader worker
    process (where torch re-raises with the worker's traceback as the
    message): one ``error:`` line naming the file, exit 2, no traceback."""
    import shutil
    root = tmp_path / 'bad'
    shutil.copytree(seg_data, root)
    names = open(root / 'splits' / 'train.txt').read().split()
    for name in names:  # whichever image the sampler draws first
        path = root / 'ann_dir' / 'train' / f'{name}.png'
        mask = np.asarray(Image.open(path)).copy()
        mask[0, 0] = 9
        Image.fromarray(mask).save(path)
    cfg = tiny_config(FCN32S_ACB, str(root), tmp_path / 'work')
    cfg.train_dataloader.update(num_workers=1)
    config = tmp_path / 'bad_config.py'
    cfg.dump(str(config))
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(config)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error:')]
    assert len(errors) == 1, result.stderr[-3000:]
    assert 'has labels outside the 5 classes' in errors[0]
    assert '.png' in errors[0] and 'Caught' not in errors[0]
    assert 'Traceback' not in result.stderr
    assert not glob.glob(str(tmp_path / 'work' / '*.pth'))


# ------------------------------------------------------------ the head
def test_fcn32s_head_upsamples_bilinearly():
    head = FCN32sHead(in_channels=8, num_classes=3, dropout_ratio=0.0)
    head.init_weights()
    feat = torch.randn(2, 8, 5, 6)
    scores = head.conv_seg(feat)
    out = head([feat])
    assert out.shape == (2, 3, 160, 192)
    ref = F.interpolate(scores, scale_factor=32, mode='bilinear',
                        align_corners=False)
    # equal away from the borders (zero padding of the transposed conv)
    inner = (..., slice(32, -32), slice(32, -32))
    assert torch.allclose(out[inner], ref[inner], atol=1e-5)
    assert not torch.allclose(out, ref, atol=1e-5)
    assert head.upsample.weight.requires_grad
    frozen = FCN32sHead(in_channels=8, num_classes=3, freeze_upsample=True)
    assert not frozen.upsample.weight.requires_grad


def test_fcn32s_head_crops_to_the_input():
    """An input size that is not a multiple of 32 gets its scores cropped,
    not resized: the top-left pixels keep the uncropped values."""
    head = FCN32sHead(in_channels=8, num_classes=3, dropout_ratio=0.0).eval()
    feat = torch.randn(1, 8, 4, 3)
    full = head([feat])
    out = head.predict_by_feat(full, [dict(img_shape=(100, 70),
                                           pad_shape=(100, 70))])
    assert out.shape == (1, 3, 100, 70)
    assert torch.equal(out, full[..., :100, :70])


@pytest.mark.parametrize('kwargs, words', [
    (dict(channels=16), 'channels (16) must equal in_channels (8)'),
    (dict(input_transform='resize_concat', in_index=[0, 1]),
     'input_transform must be None'),
    (dict(upsample_factor=0), 'upsample_factor must be a positive int'),
])
def test_fcn32s_head_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words.replace('(', r'\(').replace(
            ')', r'\)')):
        FCN32sHead(in_channels=8, num_classes=3, **kwargs)


# --------------------------------------------------------- the configs
@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_seg_config_builds_and_predicts_per_pixel(path):
    cfg = Config.fromfile(path)
    assert is_segmentor_config(cfg)
    assert cfg.default_scope == 'mmseg'
    model = build_segmentor(cfg).eval()
    kind = cfg.model.backbone.type.split('.')[-1]
    assert type(model.backbone).__name__ == kind
    from acnet_backbone.deploy.fuse import has_acb
    assert has_acb(model) == (kind == 'ACResNet')
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        logits = model.encode_decode(x, [dict(img_shape=x.shape[2:])])
    assert logits.shape == (1, 5, 96, 128)
    stride = 32 if 'fcn32s' in path else 8
    assert model.backbone(x)[-1].shape[-2:] == (96 // stride, 128 // stride)


def tiny_config(path, data_root, work_dir):
    """``path`` at tiny widths on the tiny dataset, 2 iterations."""
    from acnet_backbone.training import set_iterations
    cfg = Config.fromfile(path)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.base_channels = 8
    cfg.model.decode_head.in_channels = 64
    if cfg.model.decode_head.type == 'FCNHead':
        cfg.model.decode_head.channels = 16
        cfg.model.auxiliary_head.in_channels = 32
        cfg.model.auxiliary_head.channels = 8
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0,
                           persistent_workers=False)
        cfg[loader].dataset.data_root = data_root
    set_iterations(cfg, 2)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.fixture(scope='module')
def trained(seg_data, tmp_path_factory):
    """FCN-32s and d8 FCN with ACResNet, trained 2 iterations by mmengine's
    Runner and evaluated (mIoU); their checkpoints get random BN statistics
    and gammas afterwards (fresh BNs would hide fusion bugs)."""
    from acnet_backbone.training import train_and_evaluate
    out = {}
    for path in (FCN32S_ACB, D8_ACB):
        work = tmp_path_factory.mktemp(osp.basename(path)[:-3])
        cfg = tiny_config(path, seg_data, work)
        runner, metrics = train_and_evaluate(cfg)
        assert {'mIoU', 'mAcc', 'aAcc'} <= set(metrics)
        assert 0 <= metrics['mIoU'] <= 100
        ckpt = safe_load(str(work / 'iter_2.pth'))
        model = runner.model
        randomize_bn(model, seed=5)
        ckpt['state_dict'] = model.state_dict()
        torch.save(ckpt, work / 'trained.pth')
        cfg_path = work / 'config.py'
        cfg.dump(str(cfg_path))
        out[osp.basename(path)] = (str(cfg_path), str(work / 'trained.pth'))
    return out


# ----------------------------------------------------------- deployment
@pytest.mark.parametrize('name', ['fcn32s_acresnet18_shapes.py',
                                  'fcn-d8_acresnet18_shapes.py'])
def test_fuse_verify_export(trained, tmp_path, name):
    config, ckpt = trained[name]
    out = tmp_path / 'fused'
    report = fuse_segmentor_checkpoint(config, ckpt, str(out), onnx=True,
                                       shape=(64, 96), num_images=2)
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    assert report['fused']['max_rel_err'] < 1e-5
    assert report['fused']['unexplained'] == 0
    miou = report['mIoU']
    assert miou['trained'] == miou['fused'] == miou['onnx']
    assert (64, 96) in report['onnx']['shapes']
    assert len(report['onnx']['shapes']) >= 2  # dynamic H and W
    assert report['onnx']['inputs'] == 4  # 2 random + 2 test images
    assert report['onnx']['unexplained'] == 0
    # stock torch, no allow-list, no ACB tensors
    fused = torch.load(out / 'fused.pth', weights_only=True)
    assert not any('.acb' in k or 'branch' in k for k in fused['state_dict'])
    cfg = Config.fromfile(str(out / 'fused_config.py'))
    assert cfg.model.backbone.type == 'mmdet.ResNet'
    assert 'acb_mode' not in cfg.model.backbone
    imports = cfg.get('custom_imports', {}).get('imports', [])
    assert imports == (['acnet_backbone.seg'] if 'fcn32s' in name else [])
    # the ONNX file at a size that is no multiple of 32 (FCN-32s crops),
    # two images at once (dynamic batch)
    stock = build_segmentor(cfg).eval()
    stock.load_state_dict(fused['state_dict'], strict=True)
    x = torch.randn(2, 3, 80, 100)
    with torch.no_grad():
        ref = SegLogits(stock)(x)
    got = onnx_predictor(str(out / 'fused.onnx'))(x)
    assert got.shape == ref.shape == (2, 5, 80, 100)
    check = check_predictions(got, ref)
    assert check['max_rel_err'] < 1e-4 and check['unexplained'] == 0
    # fused vs trained, independently of the report: the trained model from
    # its own config and checkpoint against the written stock files
    trained_model = build_segmentor(Config.fromfile(config)).eval()
    trained_model.load_state_dict(
        safe_load(ckpt)['state_dict'], strict=True)
    with torch.no_grad():
        want = SegLogits(trained_model)(x)
    assert (ref - want).abs().max() <= 1e-5 * want.abs().max()
    assert (ref.argmax(1) == want.argmax(1)).float().mean() > 0.999


CHECK_STOCK = import_blocker('acnet_backbone') + r'''
import sys
import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
register_all_modules()
cfg = Config.fromfile(sys.argv[1])
model = MODELS.build(cfg.model).eval()
state = torch.load(sys.argv[2], weights_only=True)['state_dict']
model.load_state_dict(state, strict=True)
x = torch.randn(1, 3, 64, 64)
out = model.encode_decode(x, [dict(img_shape=x.shape[2:])])
assert out.shape == (1, 5, 64, 64), out.shape
assert type(model.backbone).__module__.startswith('mmdet.')
print('stock ok')
'''


def test_fused_d8_runs_in_stock_mmseg(trained, tmp_path):
    config, ckpt = trained['fcn-d8_acresnet18_shapes.py']
    out = tmp_path / 'fused'
    fuse_segmentor_checkpoint(config, ckpt, str(out), shape=(64, 64))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-c', CHECK_STOCK, str(out / 'fused_config.py'),
         str(out / 'fused.pth')], capture_output=True, text=True,
        timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'stock ok' in result.stdout


def test_bad_inputs_write_nothing(trained, tmp_path):
    fcn32s_cfg, fcn32s_ckpt = trained['fcn32s_acresnet18_shapes.py']
    d8_cfg, d8_ckpt = trained['fcn-d8_acresnet18_shapes.py']
    det_cfg = osp.join(ROOT, 'configs', 'shapes',
                       'retinanet_acresnet18_fpn_shapes.py')
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    cases = [
        # a checkpoint of another architecture
        ((d8_cfg, fcn32s_ckpt), 'checkpoint does not match the config'),
        ((fcn32s_cfg, d8_ckpt), 'checkpoint does not match the config'),
        ((det_cfg, d8_ckpt), 'not an mmseg segmentor config'),
        ((fcn32s_cfg, str(garbage)), 'garbage.pth'),
        ((fcn32s_cfg, str(tmp_path / 'missing.pth')), 'not found'),
        ((D8_PLAIN, d8_ckpt), 'nothing to fuse'),
    ]
    for i, ((config, ckpt), words) in enumerate(cases):
        out = tmp_path / f'out{i}'
        with pytest.raises(FuseError) as err:
            fuse_segmentor_checkpoint(config, ckpt, str(out), onnx=True,
                                      shape=(64, 64))
        assert words in str(err.value), (config, ckpt, str(err.value))
        assert len(str(err.value).splitlines()) == 1
        assert not out.exists()
    # existing outputs are kept without force
    out = tmp_path / 'kept'
    out.mkdir()
    (out / 'fused.pth').write_bytes(b'old')
    with pytest.raises(FuseError, match='pass `force`'):
        fuse_segmentor_checkpoint(d8_cfg, d8_ckpt, str(out), shape=(64, 64))
    assert (out / 'fused.pth').read_bytes() == b'old'
    assert os.listdir(out) == ['fused.pth']


def test_stock_config_of_the_wrapper_and_plain_backbones():
    cfg = Config(dict(
        default_scope='mmseg',
        custom_imports=dict(imports=['acnet_backbone', 'my_pkg']),
        model=dict(type='EncoderDecoder', pretrained='x',
                   backbone=dict(type='mmdet.ACNet', backbone=dict(
                       type='ResNeXt', depth=50, init_cfg=dict(
                           type='Pretrained', checkpoint='y'))),
                   decode_head=dict(type='FCNHead'))))
    stock = stock_seg_config(cfg)
    # as written: built in mmseg's scope like the trained one
    assert stock.model.backbone == dict(type='ResNeXt', depth=50,
                                        init_cfg=None)
    assert stock.model.pretrained is None
    assert stock.custom_imports['imports'] == ['my_pkg']
    cfg.model.backbone = dict(type='mmdet.FCNResNet', depth=18,
                              include_top=True)
    with pytest.raises(FuseError, match='include_top=True'):
        stock_seg_config(cfg)
    cfg.model.backbone = dict(type='ResNetV1c', depth=18)
    with pytest.raises(FuseError, match='not an acnet_backbone backbone'):
        stock_seg_config(cfg)


def test_draw_predictions(trained, tmp_path):
    from acnet_backbone.seg.visualize import draw_predictions
    config, ckpt = trained['fcn32s_acresnet18_shapes.py']
    out = tmp_path / 'pred.png'
    result = draw_predictions(config, ckpt, str(out), num_images=2)
    assert len(result['images']) == 2
    assert all(0 <= a <= 1 for a in result['pixel_accuracy'])
    img = Image.open(out)
    assert img.size[0] > 200 and img.size[1] > 150
    assert os.listdir(tmp_path) == ['pred.png']


def test_fuse_acnet_wrapper_segmentor(seg_data, tmp_path):
    """``mmdet.ACNet`` around a backbone in an mmseg config: the wrapped
    type resolves in mmseg's scope (an unprefixed 'ResNet' is mmseg's
    ResNet), and the fused config rebuilds that same class."""
    cfg = Config.fromfile(D8_ACB)
    cfg.model.backbone = dict(
        type='mmdet.ACNet', backbone=dict(
            type='ResNet', depth=18, base_channels=8, strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4), out_indices=(0, 1, 2, 3)))
    cfg.model.decode_head.update(in_channels=64, channels=16)
    cfg.model.auxiliary_head.update(in_channels=32, channels=8)
    config = tmp_path / 'acnet.py'
    cfg.dump(str(config))
    model = build_segmentor(cfg)
    stock_cls = type(model.backbone).stock_class
    randomize_bn(model, seed=2)
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'acnet.pth')
    report = fuse_segmentor_checkpoint(str(config), str(tmp_path / 'acnet.pth'),
                                       str(tmp_path / 'out'), shape=(64, 64))
    assert report['fused']['max_rel_err'] < 1e-5
    fused_cfg = Config.fromfile(str(tmp_path / 'out' / 'fused_config.py'))
    assert type(build_segmentor(fused_cfg).backbone) is stock_cls


def test_fuse_tool_takes_a_segmentor(trained, tmp_path):
    """tools/fuse.py dispatches an mmseg config to the segmentor path
    (report on the console, --num-images mIoU); detector-only options are
    one error line."""
    config, ckpt = trained['fcn-d8_acresnet18_shapes.py']
    tool = osp.join(ROOT, 'tools', 'fuse.py')
    out = tmp_path / 'fused'
    result = subprocess.run(
        [sys.executable, tool, config, ckpt, '--out-dir', str(out), '--onnx',
         '--shape', '64', '96', '--num-images', '2', '--json',
         str(tmp_path / 'r.json')],
        capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mIoU (fused, 2 test images)' in result.stdout
    assert 'onnxruntime vs torch' in result.stdout
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    bad = subprocess.run(
        [sys.executable, tool, config, ckpt, '--out-dir',
         str(tmp_path / 'no'), '--image', 'x.png'],
        capture_output=True, text=True, cwd=ROOT, timeout=900)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1
    assert lines[0].startswith('error:') and '--image is for detectors' in \
        lines[0]
    assert not (tmp_path / 'no').exists()



def test_deploy_tool_takes_a_segmentor(trained, tmp_path):
    """tools/deploy.py deploys an mmseg config as fuse.py --onnx does
    (fused.onnx, checked, mIoU of trained / fused / ONNX; --eval: the whole
    test set); --int8 and --threads are one error line each."""
    import json
    config, ckpt = trained['fcn32s_acresnet18_shapes.py']
    tool = osp.join(ROOT, 'tools', 'deploy.py')
    out = tmp_path / 'deployed'
    result = subprocess.run(
        [sys.executable, tool, config, ckpt, '--out-dir', str(out),
         '--shape', '64', '64', '--eval', '--json', str(tmp_path / 'r.json')],
        capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ('trained', 'fused', 'onnx'):  # the tiny set's 4 val images
        assert f'mIoU ({name}, 4 test images)' in result.stdout
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    report = json.load(open(tmp_path / 'r.json'))
    assert report['mIoU']['onnx'] == pytest.approx(report['mIoU']['trained'])
    for option, words in ((['--int8'], '--int8 is for detectors'),
                          (['--threads', '1'], 'need --backend openvino'),
                          (['--backend', 'openvino', '--precision', 'int8'],
                           'a segmentor has no INT8 file')):
        bad = subprocess.run(
            [sys.executable, tool, config, ckpt, '--out-dir',
             str(tmp_path / 'no'), *option],
            capture_output=True, text=True, cwd=ROOT, timeout=900)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1, bad.stderr[-2000:]
        assert lines[0].startswith('error:') and words in lines[0]
    assert not (tmp_path / 'no').exists()


@pytest.mark.skipif(not HAS_OPENVINO, reason='openvino is not installed')
def test_segmentor_in_openvino(trained, tmp_path, monkeypatch):
    """backend openvino: fused.onnx run in OpenVINO FP32 (checked as
    strictly as onnxruntime) and BF16 where the CPU has it, mIoU per
    precision, latency interleaved, IR written; an OpenVINO FP32 output that
    drifts from torch fails the deployment and writes nothing."""
    from acnet_backbone.deploy import end2end
    from acnet_backbone.deploy.backends import openvino as ovb
    from acnet_backbone.deploy.tasks import segmentation
    config, ckpt = trained['fcn-d8_acresnet18_shapes.py']
    precisions = ['fp32'] + (['bf16'] if ovb.cpu_capabilities()['BF16']
                             else [])
    out = tmp_path / 'ov'
    report = end2end.deploy_any_checkpoint(
        config, ckpt, str(out), shape=(64, 64), num_images=4, threads=1,
        backend='openvino', save_ir=True)
    assert sorted(os.listdir(out)) == ['fused.bin', 'fused.onnx',
                                       'fused.pth', 'fused.xml',
                                       'fused_config.py']
    ran = report['openvino']['precisions']
    assert list(ran) == precisions  # default: the native ones, no int8
    assert ran['fp32']['compiled']['hint'] == 'fp32'
    assert ran['fp32']['unexplained'] == 0 and ran['fp32']['inputs'] == 4
    for p in precisions:
        assert ran[p]['pixels'] == 4 * 64 * 64
        assert report['mIoU'][f'openvino_{p}'] == pytest.approx(
            report['mIoU']['onnx'], abs=0.5 if p == 'bf16' else 1e-6)
    lat = report['latency_ms']
    assert set(lat['median']) == {'torch', 'onnx'} | {
        f'openvino_{p}' for p in precisions}
    assert all(v > 0 for v in lat['median'].values())
    assert lat['shape'] == [64, 64] and lat['threads'] == 1
    lines = '\n'.join(segmentation.SegmentationTask().summary_lines(report))
    assert 'OpenVINO FP32 vs torch (ran: hint fp32' in lines
    assert 'mIoU (openvino_fp32, 4 test images)' in lines
    # OpenVINO FP32 that drifts from torch: refused, nothing written
    real = segmentation.session_predictor

    def drifting(session):
        predict = real(session)
        if not isinstance(session, ovb.OpenVINOSession):
            return predict
        return lambda x: predict(x) * 1.01

    monkeypatch.setattr(segmentation, 'session_predictor', drifting)
    with pytest.raises(FuseError, match='OpenVINO fp32 vs torch check '
                       'failed'):
        end2end.deploy_any_checkpoint(
            config, ckpt, str(tmp_path / 'bad'), shape=(64, 64),
            num_images=4, backend='openvino', precisions=['fp32'])
    assert not (tmp_path / 'bad').exists()


def test_segmentor_on_a_registered_backend(trained, added_backend,
                                           tmp_path):
    """A runtime added by registration alone (onnxruntime with one thread,
    tests/conftest.py) deploys a segmentor the way OpenVINO does: FP32
    checked as strictly as onnxruntime, its mIoU, latency interleaved, its
    own report section and summary line; int8 and save_ir are refused in
    one line and write nothing."""
    from acnet_backbone.deploy import end2end
    from acnet_backbone.deploy.tasks import segmentation
    config, ckpt = trained['fcn-d8_acresnet18_shapes.py']
    for options, words in (
            (dict(precisions=['int8']), 'a segmentor has no INT8 file; '
             'onnxruntime 1 thread runs it in fp32'),
            (dict(save_ir=True), 'onnxruntime 1 thread has no file format')):
        with pytest.raises(FuseError, match=words):
            end2end.deploy_any_checkpoint(
                config, ckpt, str(tmp_path / 'no'), shape=(64, 64),
                num_images=4, backend=added_backend, **options)
    assert not (tmp_path / 'no').exists()
    out = tmp_path / 'out'
    report = end2end.deploy_any_checkpoint(
        config, ckpt, str(out), shape=(64, 64), num_images=4, threads=1,
        backend=added_backend)
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    assert 'openvino' not in report
    ran = report[added_backend]['precisions']
    assert list(ran) == ['fp32'] and ran['fp32']['inputs'] == 4
    assert ran['fp32']['max_rel_err'] <= 1e-4
    assert ran['fp32']['unexplained'] == 0
    name = ran['fp32']['name']
    assert name == 'onnxruntime_1t_fp32'
    assert report['mIoU'][name] == pytest.approx(report['mIoU']['onnx'],
                                                 abs=1e-6)
    assert set(report['latency_ms']['median']) == {'torch', 'onnx', name}
    lines = segmentation.SegmentationTask().summary_lines(report)
    assert any(line.startswith('onnxruntime 1 thread FP32 vs torch: max '
                               'rel err') for line in lines), lines
    assert f'mIoU ({name}, 4 test images)' in '\n'.join(lines)


# ------------------------------------- the class-fraction reference
def test_fraction_map_miou():
    """Stride 1 reproduces the labels; a shape much smaller than the stride
    blurs away; ignored pixels count nowhere; bad input is refused."""
    from acnet_backbone.seg.fraction_map import fraction_map_miou
    label = np.zeros((64, 64), np.uint8)
    label[8:40, 8:40] = 1
    label[49:55, 49:55] = 2  # 6x6 pixels: far below a stride-32 cell
    assert fraction_map_miou([label], 1, 3)['mIoU'] == pytest.approx(100)
    coarse = fraction_map_miou([label], 32, 3)
    fine = fraction_map_miou([label], 4, 3)
    assert coarse['IoU'][2] == 0 and fine['IoU'][2] > 0
    assert coarse['mIoU'] < fine['mIoU'] < 100
    ignored = label.copy()
    ignored[:4] = 255
    assert fraction_map_miou([ignored], 1, 3)['mIoU'] == pytest.approx(100)
    # sizes that are not multiples of the stride
    assert fraction_map_miou([label[:50, :45]], 1, 3)['mIoU'] == \
        pytest.approx(100)
    for args, words in [(([label], 0, 3), 'positive int'),
                        (([label], 8, 2), 'labels outside 0-1'),
                        (([], 8, 3), 'no label maps'),
                        (([label[None]], 8, 3), '2-D')]:
        with pytest.raises(ValueError, match=words):
            fraction_map_miou(*args)


# ------------------------------------------------ the deploy core's paths
def _plain_d8(seg_data, tmp_path):
    """A plain (FCNResNet, no ACB) d8 segmentor: its config and a
    checkpoint with random BN statistics."""
    cfg = tiny_config(D8_PLAIN, seg_data, tmp_path / 'w')
    path = tmp_path / 'plain.py'
    cfg.dump(str(path))
    model = randomize_bn(build_segmentor(cfg), seed=2)
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'plain.pth')
    return str(path), str(tmp_path / 'plain.pth')


def test_plain_segmentor_is_converted_without_require_acb(seg_data, tmp_path):
    config, ckpt = _plain_d8(seg_data, tmp_path)
    out = tmp_path / 'out'
    report = fuse_segmentor_checkpoint(config, ckpt, str(out), onnx=True,
                                       shape=(64, 64), require_acb=False)
    assert report['fused']['max_rel_err'] == 0  # nothing fused: the same
    assert report['onnx']['unexplained'] == 0
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    assert Config.fromfile(str(out / 'fused_config.py')).model.backbone[
        'type'] == 'mmdet.ResNet'


def test_failed_seg_check_or_export_writes_nothing(trained, tmp_path,
                                                   monkeypatch):
    from acnet_backbone.deploy import core
    config, ckpt = trained['fcn-d8_acresnet18_shapes.py']
    real = core.fuse_model

    def broken(model, inplace=False):
        fused = real(model, inplace)
        with torch.no_grad():
            fused.backbone.layer1[0].conv1.weight.mul_(1.5)
        return fused

    with monkeypatch.context() as m:
        m.setattr(core, 'fuse_model', broken)
        with pytest.raises(FuseError, match='fused vs trained check failed'):
            fuse_segmentor_checkpoint(config, ckpt, str(tmp_path / 'a'),
                                      shape=(64, 64))
    assert not (tmp_path / 'a').exists()

    def no_export(*args, **kwargs):
        raise RuntimeError('no symbolic for this op\nsecond line')

    monkeypatch.setattr(torch.onnx, 'export', no_export)
    with pytest.raises(FuseError, match='cannot export the fused model to '
                       'ONNX: RuntimeError: no symbolic') as err:
        fuse_segmentor_checkpoint(config, ckpt, str(tmp_path / 'b'),
                                  onnx=True, shape=(64, 64))
    assert '\n' not in str(err.value)
    assert not (tmp_path / 'b').exists()


def test_foreign_backbone_refused_in_one_line_by_both_tools(seg_data,
                                                           tmp_path):
    """A plain segmentor of a backbone this package does not fuse (mmdet's
    ResNeXt): refused by tools/deploy.py and tools/fuse.py in the same one
    line as a detector of it (tests/test_end2end.py), nothing written."""
    cfg = tiny_config(D8_PLAIN, seg_data, tmp_path / 'w')
    cfg.model.backbone = dict(type='mmdet.ResNeXt', depth=50, groups=2,
                              base_width=4, base_channels=8,
                              strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                              out_indices=(0, 1, 2, 3))
    cfg.model.decode_head.in_channels = 256
    cfg.model.auxiliary_head.in_channels = 128
    path = tmp_path / 'resnext.py'
    cfg.dump(str(path))
    # refused on the config, before the checkpoint is read
    torch.save(dict(state_dict=dict(x=torch.zeros(1))),
               tmp_path / 'resnext.pth')
    for tool in ('deploy.py', 'fuse.py'):
        out = tmp_path / f'out_{tool}'
        result = subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools', tool), str(path),
             str(tmp_path / 'resnext.pth'), '--out-dir', str(out)],
            capture_output=True, text=True, cwd=ROOT, timeout=900)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, \
            result.stderr[-2000:]
        assert lines[0] == ("error: backbone 'mmdet.ResNeXt' is not an "
                            'acnet_backbone backbone (ACResNet, FCNResNet, '
                            'ACNet): nothing to fuse'), lines[0]
        assert not out.exists()
