"""tools/deploy.py: fuse, export end to end through mmdeploy, check in a plain
onnxruntime session, evaluate; bad input refused with nothing written."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from acnet_backbone.datasets import make_shapes_dataset
from acnet_backbone.testing import import_blocker
from acnet_backbone.deploy.checkpoint import build_detector
from acnet_backbone.deploy.end2end import (match_detections, preprocess,
                                           dataset_images, torch_detections)
from acnet_backbone.deploy.mmdeploy_compat import mmdeploy_export_compat
from acnet_backbone.safe_load import safe_load
from conftest import randomize_bn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'deploy.py')
OUTPUTS = ['deploy_config.py', 'deploy_report.json', 'end2end.onnx',
           'fused.pth', 'fused_config.py']

DATA = '''
data_root = '{root}/'
metainfo = dict(classes=('rectangle', 'ellipse', 'triangle', 'cross'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
val_dataloader = test_dataloader
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='annotations/train.json',
                 data_prefix=dict(img='train/')))
test_evaluator = dict(ann_file=data_root + 'annotations/val.json')
val_evaluator = test_evaluator
'''
RETINA = '''
_base_ = '{root_dir}/configs/shapes/retinanet_acresnet18_fpn_shapes.py'
model = dict(
    backbone=dict(base_channels=8, acb_gamma_init=0.5),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32,
                   norm_cfg=dict(num_groups=8)),
    # every anchor is a candidate (mmdet ranks (anchor, class) pairs before
    # NMS, mmdeploy anchors: the same set when nothing is cut)
    test_cfg=dict(nms_pre=5000, score_thr=0.05, max_per_img=30))
'''
FASTER = '''
_base_ = '{root_dir}/configs/acnet/faster-rcnn_acresnet50_fpn_1x_coco.py'
model = dict(
    backbone=dict(base_channels=8, stem_channels=8, init_cfg=None,
                  acb_gamma_init=0.5),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=4)),
    test_cfg=dict(rcnn=dict(score_thr=0.0, max_per_img=20)))
'''

# a plain (no ACB) ResNeXt RetinaNet: a backbone this package does not fuse
RESNEXT = '''
_base_ = '{root_dir}/configs/shapes/retinanet_fcnresnet18_fpn_shapes.py'
model = dict(
    backbone=dict(_delete_=True, type='ResNeXt', depth=50, groups=2,
                  base_width=4, base_channels=8, out_indices=(0, 1, 2, 3),
                  norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=True, style='pytorch'),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32,
                   norm_cfg=dict(num_groups=8)))
'''


def _setup(tmp, name, body, data_root=None):
    config = tmp / f'{name}.py'
    config.write_text(body.format(root_dir=ROOT) + DATA.format(
        root=data_root or tmp / 'data'))
    cfg = Config.fromfile(str(config))
    model = build_detector(cfg)
    randomize_bn(model, seed=3)
    head = model.roi_head.bbox_head if hasattr(model, 'roi_head') else \
        model.bbox_head
    with torch.no_grad():  # spread the class scores, as training does
        cls = head.retina_cls if hasattr(head, 'retina_cls') else head.fc_cls
        cls.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
        cls.bias.fill_(-2.0)
    ckpt = tmp / f'{name}.pth'
    torch.save(dict(meta=dict(seed=np.int64(1)), state_dict=model.state_dict()),
               ckpt)
    return str(config), str(ckpt)


def make_work(tmp_path_factory, name='end2end'):
    """A folder with a tiny shapes dataset in ``data/`` (4 train, 6 val)."""
    tmp = tmp_path_factory.mktemp(name)
    make_shapes_dataset(str(tmp / 'data'), 4, 6, 96, seed=8, progress=False)
    return tmp


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return make_work(tmp_path_factory)


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=900)


PLAIN_ORT = import_blocker('acnet_backbone', 'mmdeploy', 'mmdet', 'mmengine',
                           'mmcv', 'mmpretrain', 'torch') + r'''
import sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])
assert [i.name for i in session.get_inputs()] == ['input']
assert [o.name for o in session.get_outputs()] == ['dets', 'labels']
data = np.load(sys.argv[2])
out = {}
for i in range(int(data['n'])):
    dets, labels = session.run(None, {'input': data[f'x{i}']})
    assert dets.ndim == 3 and dets.shape[2] == 5 and labels.shape == dets.shape[:2]
    out[f'dets{i}'], out[f'labels{i}'] = dets[0], labels[0]
np.savez(sys.argv[3], **out)
print('ran', int(data['n']))
'''


def test_retinanet_end_to_end_matches_torch_and_map(work):
    config, ckpt = _setup(work, 'retina', RETINA)
    out = work / 'deployed'
    result = run_tool(config, ckpt, '--out-dir', str(out), '--eval',
                      '--num-images', '4')
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| bbox_mAP torch / ONNX |' in result.stdout
    assert sorted(os.listdir(out)) == OUTPUTS
    report = json.load(open(out / 'deploy_report.json'))
    assert report['onnx']['custom_ops'] == []
    assert report['check']['enforced'] and report['check']['detections'] > 0
    assert report['check']['mismatched_images'] == 0
    assert report['check']['max_box_err_px'] <= 1e-2
    for key in ('bbox_mAP', 'bbox_mAP_50'):
        assert abs(report['eval']['onnx'][key] -
                   report['eval']['torch'][key]) <= 1e-3
    assert report['latency_ms']['torch'] > 0 and report['latency_ms'][
        'onnx'] > 0
    # the fused checkpoint loads with stock torch, no allow-list
    assert torch.load(out / 'fused.pth', weights_only=True)['meta'][
        'seed'] == 1

    # a plain onnxruntime process (nothing of torch or OpenMMLab importable)
    # reproduces the torch detector on test images preprocessed as the
    # config says
    cfg = Config.fromfile(str(out / 'fused_config.py'))
    stock = build_detector(cfg).eval()
    stock.load_state_dict(torch.load(out / 'fused.pth',
                                     weights_only=True)['state_dict'])
    images = dataset_images(cfg, 6)
    inputs, refs = {}, []
    for i, path in enumerate(images):
        x, samples = preprocess(cfg, stock, path)
        inputs[f'x{i}'] = x.numpy()
        refs.append(torch_detections(stock, x, samples))
    np.savez(work / 'inputs.npz', n=len(images), **inputs)
    script = work / 'plain_ort.py'
    script.write_text(PLAIN_ORT)
    ran = subprocess.run([sys.executable, str(script), str(out / 'end2end.onnx'),
                          str(work / 'inputs.npz'), str(work / 'got.npz')],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    got = np.load(work / 'got.npz')
    total = 0
    for i, ref in enumerate(refs):
        m = match_detections(ref, (got[f'dets{i}'], got[f'labels{i}']), 0,
                             0.05, 30)
        assert m['n_torch'] == m['n_onnx'] and m['labels_equal'], m
        assert m['max_box_err'] <= 1e-2 and m['max_score_err'] <= 1e-3, m
        total += m['n_torch']
    assert total > 0

    # again without --force: refused, files kept
    stamp = os.path.getmtime(out / 'end2end.onnx')
    again = run_tool(config, ckpt, '--out-dir', str(out))
    assert again.returncode == 2 and '--force' in again.stderr
    assert os.path.getmtime(out / 'end2end.onnx') == stamp


def test_faster_rcnn_exports_and_runs_in_onnxruntime(work):
    config, ckpt = _setup(work, 'faster', FASTER)
    out = work / 'faster_out'
    result = run_tool(config, ckpt, '--out-dir', str(out), '--num-images', '2')
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(out / 'deploy_report.json'))
    assert not report['check']['enforced']  # see the report's note
    assert report['check']['images'] == 2
    # mmdeploy maps mmcv's RoIAlign to ONNX's own RoiAlign for onnxruntime
    assert report['onnx']['custom_ops'] == []
    import onnx
    ops = {n.op_type for n in onnx.load(str(out / 'end2end.onnx')).graph.node}
    assert 'RoiAlign' in ops


def test_fuse_onnx_refuses_two_stage_with_a_pointer(work):
    from acnet_backbone.deploy.checkpoint import FuseError, fuse_checkpoint
    config, ckpt = _setup(work, 'faster_fuse', FASTER)
    out = work / 'faster_fuse_out'
    with pytest.raises(FuseError, match='two-stage.*tools/deploy.py'):
        fuse_checkpoint(config, ckpt, str(out), onnx=True, shape=(64, 64))
    assert not out.exists()


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_bad_inputs_refused_with_nothing_written(work):
    config, ckpt = _setup(work, 'retina_bad', RETINA)
    evil = work / 'evil.pth'
    torch.save({'state_dict': {'x': _Hostile(str(work / 'pwned'))}}, evil)
    garbage = work / 'garbage.pth'
    garbage.write_bytes(b'this is not a checkpoint')
    wrong = work / 'wrong.pth'
    sd = safe_load(ckpt)['state_dict']
    sd.pop('backbone.conv1.weight')
    torch.save({'state_dict': sd}, wrong)
    cases = [
        ([config, str(evil)], 'not allow-listed'),
        ([config, str(garbage)], 'not a readable checkpoint'),
        ([config, str(work / 'missing.pth')], 'not found'),
        ([config, str(wrong)], 'does not match the config'),
        ([str(work / 'missing.py'), ckpt], 'not found'),
    ]
    for i, (args, message) in enumerate(cases):
        out = work / f'bad_{i}'
        result = run_tool(*args, '--out-dir', str(out))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith('error:'), lines
        assert message in lines[0], lines[0]
        assert not out.exists() or not os.listdir(out)
    assert not (work / 'pwned').exists()


def test_unexportable_model_is_one_error(work, monkeypatch):
    """A model mmdeploy cannot export: one error, nothing written."""
    from acnet_backbone.deploy import end2end
    from acnet_backbone.deploy.checkpoint import FuseError
    config, ckpt = _setup(work, 'retina_unexp', RETINA)

    def fail(*args, **kwargs):
        raise RuntimeError('no symbolic for this op\nsecond line')

    import mmdeploy.apis
    monkeypatch.setattr(mmdeploy.apis, 'torch2onnx', fail)
    out = work / 'unexportable'
    with pytest.raises(FuseError, match='mmdeploy cannot export') as err:
        end2end.deploy_checkpoint(config, ckpt, str(out), num_images=1)
    assert '\n' not in str(err.value)
    assert not out.exists()


def test_check_reports_differing_images(caplog):
    """Two-stage (not enforced): the differing images are named and their
    box error is not reported as 0; one-stage: one error naming the image."""
    from mmengine.logging import MMLogger

    from acnet_backbone.deploy.checkpoint import FuseError
    from acnet_backbone.deploy.end2end import check_against_torch
    cfg = Config(dict(model=dict(test_cfg=dict(rcnn=dict(score_thr=0.05)))))
    box = np.array([[0, 0, 10, 10, 0.9]], np.float32)
    same = (box, np.array([1]))
    run = dict(torch=[same, same, same],
               onnx=[(box + [0, 0, 0.001, 0, 0], np.array([1])),
                     (box[:0], np.array([], int)), (box, np.array([2]))])
    images = ['a.png', 'b.png', 'c.png']
    logger = MMLogger.get_instance('check_test')
    check = check_against_torch(run, cfg, images, False, logger)
    assert check['mismatched_images'] == 2 and not check['enforced']
    assert [d['image'] for d in check['differing_images']] == ['b.png',
                                                               'c.png']
    assert all(d['max_box_err'] is None for d in check['differing_images'])
    assert check['max_box_err_px'] == pytest.approx(0.001, abs=1e-6)
    only_bad = dict(torch=run['torch'][1:], onnx=run['onnx'][1:])
    check = check_against_torch(only_bad, cfg, images[1:], False, logger)
    assert check['max_box_err_px'] is None and check['max_score_err'] is None
    with pytest.raises(FuseError, match='2 of 3 images .first: b.png: 0 vs 1'):
        check_against_torch(run, cfg, images, True, logger)


def test_output_below_a_regular_file_is_refused(work):
    """The unwritable-output refusal, in a form that holds for root too."""
    from acnet_backbone.deploy.checkpoint import FuseError
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    config, ckpt = _setup(work, 'retina_blocked', RETINA)
    blocker = work / 'regular_file'
    blocker.write_text('x')
    with pytest.raises(FuseError, match='cannot be created'):
        deploy_checkpoint(config, ckpt, str(blocker / 'out'), int8=True)
    assert blocker.read_text() == 'x'


def test_compat_shim_passes_dynamo_only_where_it_exists(monkeypatch):
    from acnet_backbone.deploy.mmdeploy_compat import \
        torchscript_export_kwargs
    seen = {}

    def old_export(model, args, f, opset_version=None):
        seen['kwargs'] = dict(opset_version=opset_version)

    def new_export(model, args, f, opset_version=None, dynamo=True):
        seen['kwargs'] = dict(opset_version=opset_version, dynamo=dynamo)

    assert torchscript_export_kwargs(old_export) == {}
    assert torchscript_export_kwargs(new_export) == {'dynamo': False}
    for fake, want in ((old_export, dict(opset_version=11)),
                       (new_export, dict(opset_version=11, dynamo=False))):
        monkeypatch.setattr(torch.onnx, 'export', fake)
        with mmdeploy_export_compat():
            torch.onnx.export(None, (), 'x.onnx', opset_version=11)
        assert seen['kwargs'] == want
        assert torch.onnx.export is fake


def test_compat_shim_is_scoped():
    import torch.onnx.symbolic_opset9 as opset9
    before = torch.onnx.export
    # torch 2.1 still has _cast_Long itself: the shim adds none there
    had_cast = hasattr(opset9, '_cast_Long')
    with mmdeploy_export_compat():
        assert torch.onnx.export is not before
        assert hasattr(opset9, '_cast_Long')
    assert torch.onnx.export is before
    assert hasattr(opset9, '_cast_Long') == had_cast
    # the RTMDet rewrite (boxes clipped as mmdet clips them) is registered
    # for onnxruntime inside the block only
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.core.rewriters.rewriter_utils import collect_env
    from mmdeploy.utils import IR, Backend

    from acnet_backbone.deploy.mmdeploy_compat import (
        RTMDET_PREDICT, rtmdet_predict_by_feat_clipped)

    def ours():
        return [r for r in FUNCTION_REWRITER._registry._rewrite_records.get(
            RTMDET_PREDICT, []) if r['_object'] is
            rtmdet_predict_by_feat_clipped]

    assert not ours()
    with mmdeploy_export_compat():
        assert ours()
        # the environment mmdeploy's RewriterContext builds (backend, IR and
        # library versions): a bare dict works only after an export ran
        active = FUNCTION_REWRITER._registry.get_records(
            collect_env(Backend.ONNXRUNTIME, IR.ONNX))
        assert (RTMDET_PREDICT, ours()[0]) in active
    assert not ours()


def test_match_detections_cutoffs_and_flat_boxes():
    ref = (np.array([[0, 0, 10, 10, 0.9], [5, 5, 9, 9, 0.0501]], np.float32),
           np.array([1, 2]))
    got = (np.array([[0, 0, 10, 10.001, 0.9], [3, 0, 8, 0, 0.95]],
                    np.float32), np.array([1, 0]))
    # the torch box at the score threshold is a near-tie; the flat ONNX box
    # is one mmdet drops
    m = match_detections(ref, got, 0, score_thr=0.05)
    assert m['n_torch'] == m['n_onnx'] == 1 and m['labels_equal']
    assert m['n_degenerate'] == 1
    # the all-zero rows mmdeploy's NMS pads with are no flat detections
    padded = (np.concatenate([got[0], np.zeros((2, 5), np.float32)]),
              np.concatenate([got[1], [0, 0]]))
    assert match_detections(ref, padded, 0, score_thr=0.05) == m
    assert m['max_box_err'] == pytest.approx(0.001, abs=1e-5)
    # without the threshold the extra torch box is a real difference, and
    # unpaired lists have no box error (not 0)
    m = match_detections(ref, got, 0)
    assert m['n_torch'] == 2 and m['n_onnx'] == 1
    assert m['max_box_err'] is None and m['max_score_err'] is None
    wrong = (got[0], np.array([3, 0]))
    m = match_detections(ref, wrong, 0, 0.05)
    assert not m['labels_equal'] and m['max_box_err'] is None
    # a list cut by max_per_img: near-ties at its last score are left out
    full = (np.array([[0, 0, 10, 10, 0.9], [1, 1, 5, 5, 0.5]], np.float32),
            np.array([1, 1]))
    other = (np.array([[0, 0, 10, 10, 0.9], [2, 2, 6, 6, 0.5]], np.float32),
             np.array([1, 2]))
    m = match_detections(full, other, 0, 0.05, max_per_img=2)
    assert m['n_torch'] == m['n_onnx'] == 1 and m['labels_equal']


def test_bbox_metrics_of_a_detector_that_detects_nothing():
    """mmdet's CocoMetric returns nothing when no image has a detection:
    the deploy report gives mAP 0 instead of failing on a missing key."""
    from acnet_backbone.deploy.end2end import bbox_metrics
    evaluator = dict(type='CocoMetric', ann_file='x.json', metric='bbox')
    empty = bbox_metrics({}, evaluator)
    assert empty['bbox_mAP'] == 0.0 and empty['bbox_mAP_50'] == 0.0
    full = bbox_metrics({'coco/bbox_mAP': 0.5, 'coco/bbox_mAP_50': 0.7,
                         'coco/other': 1.0}, evaluator)
    assert full == {'bbox_mAP': 0.5, 'bbox_mAP_50': 0.7}


def test_plain_resnext_detector_is_refused_in_one_line(work):
    """tools/deploy.py and tools/fuse.py on a plain ResNeXt RetinaNet
    checkpoint: one error line (the segmentation path's, see
    tests/test_segmentation.py), exit 2, nothing written."""
    config, ckpt = _setup(work, 'resnext', RESNEXT)
    for tool in (TOOL, osp.join(ROOT, 'tools', 'fuse.py')):
        out = work / f'resnext_{osp.basename(tool)}'
        result = subprocess.run(
            [sys.executable, tool, config, ckpt, '--out-dir', str(out)],
            capture_output=True, text=True, cwd=ROOT, timeout=900)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, \
            result.stderr[-2000:]
        assert lines[0] == ("error: backbone 'ResNeXt' is not an "
                            'acnet_backbone backbone (ACResNet, FCNResNet, '
                            'ACNet): nothing to fuse'), lines[0]
        assert not out.exists()


def test_missing_mmdeploy_or_op_library_is_one_error(work, monkeypatch):
    from acnet_backbone.deploy import end2end
    from acnet_backbone.errors import FuseError
    config, ckpt = _setup(work, 'retina_missing', RETINA)
    out = work / 'missing_out'
    with monkeypatch.context() as m:
        m.setitem(sys.modules, 'mmdeploy', None)  # import fails
        with pytest.raises(FuseError, match='mmdeploy is not installed'):
            end2end.deploy_checkpoint(config, ckpt, str(out), num_images=1)
    assert not out.exists()
    # the exported file needs custom ops and no library provides them
    from acnet_backbone.deploy import export
    monkeypatch.setattr(export, 'needs_custom_ops',
                        lambda path: ['TRTBatchedNMS'])
    monkeypatch.setattr(export, 'ort_custom_ops_library', lambda: None)
    with pytest.raises(FuseError, match=r"needs custom ops \['TRTBatchedNMS'"
                       r"\] but mmdeploy's onnxruntime op library was not "
                       'found') as err:
        end2end.deploy_checkpoint(config, ckpt, str(out), num_images=1)
    assert '\n' not in str(err.value)
    assert not out.exists()


def test_sizes_refused_in_the_tools_words(work):
    """The package names its arguments, tools/deploy.py its flags."""
    from acnet_backbone.deploy.end2end import check_sizes
    from acnet_backbone.errors import FuseError
    with pytest.raises(FuseError, match='`shape` 16 16 is too small'):
        check_sizes((16, 16), 1, None)
    check_sizes((32, 32), 1, 1)
    config, ckpt = _setup(work, 'retina_sizes', RETINA)
    for args, line in ((['--shape', '16', '16'],
                        'error: --shape 16 16 is too small (at least 32 32)'),
                       (['--threads', '0'],
                        'error: --threads must be at least 1')):
        result = run_tool(config, ckpt, '--out-dir', str(work / 'sizes'),
                          *args)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [line]
    assert not (work / 'sizes').exists()
