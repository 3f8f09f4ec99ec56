"""The demo and benchmark pipelines of the package (acnet_backbone.demo,
acnet_backbone.benchmark) that tools/demo.py and tools/benchmark.py call:
their refusals, tables and files, and the cheap measurements."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from acnet_backbone import benchmark
from acnet_backbone.demo import demo_config, summary_lines
from acnet_backbone.errors import AcnetError, InputError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_demo_refuses_bad_input_before_any_work(tmp_path):
    with pytest.raises(InputError, match='config not found'):
        demo_config(str(tmp_path / 'none.py'), str(tmp_path / 'w'),
                    str(tmp_path / 'data'))
    with pytest.raises(InputError, match='`max_iters` must be positive'):
        demo_config(osp.join(ROOT, 'configs', 'shapes',
                             'retinanet_acresnet18_fpn_shapes.py'),
                    str(tmp_path / 'w'), str(tmp_path / 'data'), 0)
    assert os.listdir(tmp_path) == []
    # the tool: its flag in one error line, exit 2
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--max-iters',
         '0', '--work-dir', str(tmp_path / 'w')], capture_output=True,
        text=True, cwd=ROOT, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines == [
        'error: --max-iters must be positive'], result.stderr[-2000:]


def test_demo_config_points_at_the_data(tmp_path):
    from acnet_backbone.datasets import make_shapes_dataset
    data = tmp_path / 'data'
    make_shapes_dataset(str(data), 2, 2, 64, seed=0, progress=False)
    cfg = demo_config(osp.join(ROOT, 'configs', 'shapes',
                               'retinanet_acresnet18_fpn_shapes.py'),
                      str(tmp_path / 'w'), str(data), 7)
    assert cfg.train_cfg.max_iters == 7 and cfg.work_dir == str(tmp_path /
                                                                'w')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == f'{data}/'
    assert cfg.test_evaluator.ann_file == f'{data}/annotations/val.json'


def test_demo_summary_table():
    summary = dict(
        bbox_mAP=0.61234, bbox_mAP_50=0.9, bbox_mAP_fused=0.61234,
        bbox_mAP_50_fused=0.9, bbox_mAP_onnx_end2end=0.61234,
        bbox_mAP_50_onnx_end2end=0.9, latency_ms_torch_fused=12.345,
        latency_ms_onnx_end2end=6.5, onnx_end2end_max_box_err_px=1e-5,
        fuse_max_rel_err=2e-7, onnx_max_rel_err=3e-6, params_train=1234567,
        params_deploy=1000000, train_seconds=100.0, seconds=200.0)
    lines = summary_lines(summary)
    assert lines[:2] == ['| metric | value |', '| --- | --- |']
    assert '| bbox mAP | 0.612 |' in lines
    assert '| median latency per image, torch fused / ONNX (ms) | 12.3 / ' \
        '6.5 |' in lines
    assert '| params train / deploy | 1,234,567 / 1,000,000 |' in lines


def test_benchmark_statistics_and_interleaving():
    calls = []
    cases = {name: (lambda n=name: calls.append(n)) for name in 'ab'}
    times = benchmark.interleaved(cases, 3, 1, 'cpu')
    assert calls == ['a', 'b'] * 4  # one warm-up round, then 3 rounds
    assert {k: len(v) for k, v in times.items()} == dict(a=3, b=3)
    s = benchmark.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s['median'] == 3.0 and s['n'] == 5 and s['q1'] <= 3 <= s['q3']
    assert benchmark.fmt_table(['x', 'y'], [(1, 2)]) == \
        '| x | y |\n| --- | --- |\n| 1 | 2 |'


def test_benchmark_refuses_cuda_without_a_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(AcnetError, match='`device` is cuda'):
        benchmark.run_benchmark('cuda')


def test_fused_backbone_variant_has_no_acb():
    from acnet_backbone.deploy.fuse import has_acb
    net = benchmark.make_backbone('acresnet_fused', 'cpu', depth=18)
    assert not has_acb(net) and net.deploy
    assert has_acb(benchmark.make_backbone('acresnet_online', 'cpu', 18))


def test_cpu_device_name_gives_the_model_and_threads(tmp_path, monkeypatch):
    from acnet_backbone.deploy.backends import cpu
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('model name\t: Test CPU 9000\nflags\t\t: avx2\n')
    features = cpu.cpu_features
    monkeypatch.setattr(cpu, 'cpu_features',
                        lambda: features(str(cpuinfo)))
    assert benchmark.device_name('cpu') == \
        f'Test CPU 9000, {torch.get_num_threads()} threads'


def _results():
    row = dict(median=0.01, q1=0.009, q3=0.011, n=3, ratio=1.2)
    return dict(
        device='cpu', device_name='CPU x', torch='2', quick=True, repeats=3,
        inference=[dict(row, model='backbone', variant=v, size=[64, 64],
                        fps=100.0) for v in ('resnet', 'acresnet')],
        train=[dict(row, variant=v, size=[64, 64], peak_mem_mb=10.0,
                    mem_ratio=1.0) for v in ('resnet', 'acresnet')],
        complexity=[dict(variant='resnet', params=10, gflops_224=1.0)],
        fusion=dict(fp32_max_rel_err=1e-7),
        deploy=[dict(model='m', input=[64, 64], weights='random',
                     torch_ms=2.0, onnx_ms=1.0, ratio=0.5)])


def test_benchmark_tables_and_files(tmp_path):
    results = _results()
    text = benchmark.markdown(results)
    assert '| backbone | acresnet | 64x64 | 10.0 | 9.0-11.0 | 1.200 |' in text
    assert '| m | 64x64 | random | 2.0 | 1.0 | 0.50 |' in text
    paths = benchmark.write_results(results, str(tmp_path / 'out'))
    assert sorted(osp.basename(p) for p in paths) == [
        'benchmark.json', 'benchmark.md', 'benchmark.png']
    assert json.load(open(paths[0])) == results
    assert open(paths[1]).read() == text + '\n'
    only = {k: results[k] for k in ('device_name', 'deploy')}
    (path, ) = benchmark.write_results(only, str(tmp_path / 'deploy'))
    assert osp.basename(path) == 'deploy_latency.md'


def test_fcn_demo_classify_and_refusals(tmp_path):
    import numpy as np
    import torchvision
    from PIL import Image

    from acnet_backbone.fcn_demo import classify
    torch.manual_seed(0)
    ckpt = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    image = tmp_path / 'img.png'
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (96, 128, 3), dtype=np.uint8)).save(image)
    result = classify(str(image), str(ckpt), window=2, size=64)
    probs = [p for p, _ in result['top5']]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert result['heat'].shape == result['image'].shape[:2] == (64, 85)
    assert 0 <= result['heat'].min() and result['heat'].max() <= 1
    for args, words in (((str(tmp_path / 'none.png'), str(ckpt)),
                         'image not found'),
                        ((str(ckpt), str(ckpt)), 'cannot read image'),
                        ((str(image), str(tmp_path / 'none.pth')),
                         'checkpoint not found'),
                        ((str(image), str(image)), 'cannot load')):
        with pytest.raises(InputError, match=words):
            classify(*args, size=64)
    with pytest.raises(InputError, match='smaller'):
        classify(str(image), str(ckpt), window=7, size=64)
