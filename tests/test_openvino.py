"""OpenVINO runs of the end-to-end files (deploy/backends/openvino.py,
tools/deploy.py --backend openvino): precision choice and read-back, CPU
capabilities, IR, refusals; the deployment of a tiny RetinaNet checked in a
plain OpenVINO process."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acnet_backbone.deploy.backends import openvino as ovb
from acnet_backbone.deploy.backends import plan_backend
from acnet_backbone.deploy.errors import FuseError
from acnet_backbone.errors import InputError
from acnet_backbone.testing import import_blocker
from test_end2end import RETINA, TOOL, _setup, make_work, run_tool
from test_int8 import TinyEnd2End, _calib, _export, _run

HAS_OPENVINO = ovb.openvino_version() is not None
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason='openvino is not installed (the optional '
    "extra: pip install '.[openvino]')")

CPUINFO = '''processor\t: 0
model name\t: Test CPU
flags\t\t: fpu sse4_2 avx2 {extra}
'''


def _caps(tmp_path, extra=''):
    path = tmp_path / f'cpuinfo{len(extra)}'
    path.write_text(CPUINFO.format(extra=extra))
    return ovb.cpu_capabilities(str(path))


def test_cpu_capabilities_and_native_precisions(tmp_path):
    plain = _caps(tmp_path)
    assert plain['model'] == 'Test CPU' and plain['AVX2']
    assert not (plain['AMX'] or plain['BF16'] or plain['VNNI'])
    assert ovb.native_precisions(plain) == ['fp32', 'int8']
    amx = _caps(tmp_path, 'avx512f avx512_vnni amx_tile amx_bf16 amx_int8')
    assert amx['AMX'] and amx['BF16'] and amx['VNNI']
    assert ovb.native_precisions(amx) == ['fp32', 'bf16', 'int8']
    # AVX512-BF16 without AMX is native BF16 too
    assert _caps(tmp_path, 'avx512_bf16')['BF16']
    assert 'AMX no, BF16 no, VNNI no, AVX2 yes' in ovb.capabilities_line(
        plain)
    missing = ovb.cpu_capabilities(str(tmp_path / 'none'))
    assert missing['model'] is None and not missing['AVX2']


def test_bf16_is_never_chosen_silently(tmp_path):
    plain, amx = _caps(tmp_path), _caps(tmp_path, 'amx_tile amx_bf16')
    with pytest.raises(FuseError, match='no native BF16') as err:
        ovb.check_precisions(['fp32', 'bf16'], plain)
    assert '\n' not in str(err.value)
    with pytest.raises(FuseError, match='unknown precision'):
        ovb.check_precisions(['fp16'], amx)
    assert ovb.check_precisions(['int8', 'bf16', 'int8'], amx) == [
        'bf16', 'int8']


def test_plan_backend(tmp_path, monkeypatch):
    plan = plan_backend('onnxruntime', None, False)
    assert plan == dict(backend='onnxruntime', int8=False, precisions=[],
                        cpu=None)
    assert plan_backend('onnxruntime', ['int8'], False)['int8']
    with pytest.raises(FuseError, match='bf16 needs `backend` openvino'):
        plan_backend('onnxruntime', ['bf16'], False)
    with pytest.raises(FuseError, match='unknown backend'):
        plan_backend('tensorrt', None, False)
    # openvino missing: one line naming the extra
    monkeypatch.setitem(sys.modules, 'openvino', None)
    with pytest.raises(ovb.OpenVINOMissing, match=r'\[openvino\]') as err:
        plan_backend('openvino', None, False, _caps(tmp_path))
    assert '\n' not in str(err.value)
    assert ovb.openvino_version() is None


@needs_openvino
def test_plan_backend_defaults_to_native_precisions(tmp_path):
    plain, amx = _caps(tmp_path), _caps(tmp_path, 'amx_tile amx_bf16')
    assert plan_backend('openvino', None, False, plain) == dict(
        backend='openvino', int8=True, precisions=['fp32', 'int8'],
        cpu=plain)
    plan = plan_backend('openvino', ['bf16'], False, amx)
    assert plan['precisions'] == ['bf16'] and not plan['int8']
    with pytest.raises(FuseError, match='no native BF16'):
        plan_backend('openvino', ['bf16'], False, plain)


@needs_openvino
def test_session_runs_like_onnxruntime_and_reads_back(tmp_path):
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    x = np.random.default_rng(1).standard_normal((1, 3, 12, 10)).astype(
        np.float32)
    ref = _run(path, x)
    fp32 = ovb.OpenVINOSession(str(path), 'fp32', threads=1)
    assert fp32.ran['hint'] == 'fp32' and fp32.ran['threads'] == 1
    assert fp32.ran['convolutions'] == {'fp32': 2}
    dets, labels = fp32.run(['dets', 'labels'], {'input': x})
    assert dets.shape == ref[0].shape and labels.dtype == np.int64
    assert np.allclose(dets, ref[0], rtol=1e-4, atol=1e-4)
    assert (labels == ref[1]).all()
    # outputs in the session's order when none are named
    assert [a.shape for a in fp32.run(None, {'input': x})] == [
        dets.shape, labels.shape]
    if ovb.cpu_capabilities()['BF16']:
        bf16 = ovb.OpenVINOSession(str(path), 'bf16', threads=1)
        assert bf16.ran['hint'] == 'bf16'
        assert set(bf16.ran['convolutions']) == {'bf16'}
        got = bf16.run(['dets'], {'input': x})[0]
        # bf16 keeps 8 bits of mantissa: about 1% relative error
        assert np.abs(got - ref[0]).max() <= 0.05 * np.abs(ref[0]).max()
        assert not np.array_equal(got, dets)


def _spy_openvino(monkeypatch, read_back=None):
    """Route :class:`ovb.OpenVINOSession` through the package's
    ``openvino.Core``, recording every compile config; with ``read_back``
    (``'f32'`` or ``'bf16'``) the compiled model reports that inference
    precision, as a CPU plugin that silently chose another one would.
    Returns the list of configs."""
    import openvino as ov
    real_core = ovb.openvino_core()  # no Core of its own (openvino_core)
    configs = []

    class Compiled:
        def __init__(self, compiled):
            self._compiled = compiled

        def get_property(self, name):
            if name == 'INFERENCE_PRECISION_HINT' and read_back:
                return getattr(ov.Type, read_back)
            return self._compiled.get_property(name)

        def __getattr__(self, name):
            return getattr(self._compiled, name)

    class Core:
        def read_model(self, path):
            return real_core.read_model(path)

        def compile_model(self, model, device, config):
            configs.append(dict(config))
            return Compiled(real_core.compile_model(model, device, config))

    monkeypatch.setattr(ovb, 'openvino_core', Core)
    return configs


@needs_openvino
@pytest.mark.parametrize('precision,hint', [('fp32', 'f32'), ('bf16', 'bf16'),
                                            ('int8', 'f32')])
def test_each_precision_compiles_with_its_hint(tmp_path, monkeypatch,
                                               precision, hint):
    """What OpenVINO is asked for, on every CPU (the compiled model reports
    the precision asked for, as on a CPU with native BF16): bf16 must reach
    the compiler as the bf16 hint, never f32."""
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    configs = _spy_openvino(monkeypatch, 'bf16' if precision == 'bf16'
                            else None)
    session = ovb.OpenVINOSession(str(path), precision, threads=1)
    assert len(configs) == 1
    assert configs[0]['INFERENCE_PRECISION_HINT'] == hint
    assert configs[0]['INFERENCE_NUM_THREADS'] == 1
    assert session.ran['hint'] == ('bf16' if precision == 'bf16' else 'fp32')


@needs_openvino
@pytest.mark.parametrize('precision,read_back', [('bf16', 'f32'),
                                                 ('fp32', 'bf16'),
                                                 ('int8', 'bf16')])
def test_compiled_precision_other_than_asked_is_refused(tmp_path,
                                                        monkeypatch,
                                                        precision, read_back):
    """The read-back check, on every CPU: bf16 asked for but the compiled
    model runs f32 (OpenVINO's silent fall-back on CPUs without BF16), or
    fp32/int8 asked for but it runs bf16 (OpenVINO's default on BF16 CPUs),
    is one line, no session."""
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    _spy_openvino(monkeypatch, read_back)
    ran = dict(f32='fp32', bf16='bf16')[read_back]
    with pytest.raises(FuseError, match=f'OpenVINO compiled tiny.onnx in '
                       f'{ran}, not {precision}') as err:
        ovb.OpenVINOSession(str(path), precision, threads=1)
    assert '\n' not in str(err.value)


@needs_openvino
def test_bf16_session_only_where_openvino_compiles_bf16(tmp_path):
    """No stand-in: where OpenVINO's CPU plugin has no BF16 (its
    OPTIMIZATION_CAPABILITIES; seen on an AMD EPYC with AVX2 and an emulated
    Haswell) it compiles a bf16 request in f32, and the session refuses it;
    where it has BF16 the session runs bf16."""
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    if 'BF16' in ovb.cpu_capabilities()['openvino_capabilities']:
        session = ovb.OpenVINOSession(str(path), 'bf16', threads=1)
        assert session.ran['hint'] == 'bf16'
    else:
        with pytest.raises(FuseError, match='in fp32, not bf16'):
            ovb.OpenVINOSession(str(path), 'bf16', threads=1)


@needs_openvino
def test_int8_file_runs_int8_convolutions(tmp_path):
    from acnet_backbone.deploy.quantize import quantize_end2end
    fp32, int8 = tmp_path / 'fp32.onnx', tmp_path / 'int8.onnx'
    _export(TinyEnd2End(), fp32)
    quantize_end2end(str(fp32), str(int8), _calib())
    session = ovb.OpenVINOSession(str(int8), 'int8', threads=1)
    assert session.ran['hint'] == 'fp32'
    # OpenVINO names an INT8 convolution by its (u8) activation type
    assert set(session.ran['convolutions']) <= {'u8', 'i8'}
    x = _calib(1, seed=5)[0]
    got, ref = session.run(['dets'], {'input': x})[0], _run(fp32, x)[0]
    # one bound for every CPU: on x86 without VNNI the file has 7-bit
    # weights (quantize.int8_weight_range), as OpenVINO's INT8 kernels there
    # saturate 16-bit sums too. Measured relative error: 0.013 with VNNI,
    # 0.017 on an emulated Haswell (AVX2 only), where 8-bit weights gave
    # 0.238 (3.0 absolute, as on the AMD EPYC of issue 38)
    assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max()


SIGNAL_STACK = r'''
import ctypes, faulthandler, signal, sys, threading
faulthandler.enable()  # as pytest does in every worker
import numpy as np
from acnet_backbone.deploy.backends import openvino as ovb
from acnet_backbone.study.backends import layer_errors
path = sys.argv[1]
x = np.zeros((1, 3, 8, 8), np.float32)
# sessions released in the order they were made (a dict), a study helper
# that compiles two models, an IR write
sessions = {p: ovb.OpenVINOSession(path, p, threads=1)
            for p in ('fp32', 'int8')}
sessions['int8'].run(None, {'input': x})
del sessions
layer_errors(path, [x], 'fp32')
ovb.save_ir(path, sys.argv[2])


class Stack(ctypes.Structure):
    _fields_ = [('sp', ctypes.c_void_p), ('flags', ctypes.c_int),
                ('size', ctypes.c_size_t)]


cur = Stack()
assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(cur)) == 0
writable = [[int(a, 16) for a in line.split()[0].split('-')]
            for line in open('/proc/self/maps') if line.split()[1][1] == 'w']
print('alternate stack', 'mapped' if any(lo <= (cur.sp or 0) < hi
                                         for lo, hi in writable)
      else 'UNMAPPED', flush=True)
# a signal handled on the main thread's alternate stack (CPython installs
# its handlers with SA_ONSTACK): SIGSEGV, si_code SI_KERNEL, where it is
# unmapped
signal.signal(signal.SIGUSR1, lambda *a: print('handled', flush=True))
signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
print('survived', flush=True)
'''


@needs_openvino
@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='the alternate signal stack swap is Linux only')
def test_openvino_leaves_the_signal_stack_mapped(tmp_path):
    """The xdist worker crash of issue 38: one OpenVINO Core per session
    (or per compiled model) left the main thread's alternate signal stack
    on memory the CPU plugin had unmapped (openvino_core's docstring), and
    the next signal handled there killed the process (SIGSEGV). In a
    subprocess, so that a regression fails this test, not the worker."""
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    script = tmp_path / 'signal_stack.py'
    script.write_text(SIGNAL_STACK)
    ran = subprocess.run([sys.executable, str(script), str(path),
                          str(tmp_path / 'tiny.xml')], capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, (ran.returncode, ran.stdout, ran.stderr[-2000:])
    assert ran.stdout.split() == ['alternate', 'stack', 'mapped', 'handled',
                                  'survived'], ran.stdout


@needs_openvino
def test_ir_and_unreadable_files(tmp_path):
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    xml, bin_ = ovb.save_ir(str(path), str(tmp_path / 'tiny.xml'))
    assert os.path.isfile(xml) and os.path.isfile(bin_)
    assert ovb.ir_names(['end2end.onnx']) == ['end2end.xml', 'end2end.bin']
    x = _calib(1)[0]
    a = ovb.OpenVINOSession(xml, 'fp32', 1).run(['dets'], {'input': x})[0]
    b = ovb.OpenVINOSession(str(path), 'fp32', 1).run(['dets'],
                                                      {'input': x})[0]
    assert np.array_equal(a, b)
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not an onnx file')
    for call in (lambda: ovb.OpenVINOSession(str(bad), 'fp32'),
                 lambda: ovb.save_ir(str(bad), str(tmp_path / 'b.xml'))):
        with pytest.raises(FuseError, match='OpenVINO cannot read bad.onnx'
                           ) as err:
            call()
        assert '\n' not in str(err.value)
    assert not (tmp_path / 'b.xml').exists()


PLAIN_OV = import_blocker('acnet_backbone', 'mmdeploy', 'mmdet', 'mmengine',
                          'mmcv', 'torch', 'onnxruntime') + r'''
import sys
import numpy as np, openvino as ov
core = ov.Core()
x = np.load(sys.argv[2])['x']
out = {}
for i, path in enumerate(sys.argv[3:]):
    compiled = core.compile_model(path, 'CPU', {
        'INFERENCE_PRECISION_HINT': 'f32', 'INFERENCE_NUM_THREADS': 1})
    result = compiled({'input': x})
    out[f'dets{i}'] = result[compiled.output('dets')][0]
    out[f'labels{i}'] = result[compiled.output('labels')][0]
np.savez(sys.argv[1], **out)
'''


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return make_work(tmp_path_factory, 'openvino')


@needs_openvino
def test_deploy_openvino_end_to_end(work):
    config, ckpt = _setup(work, 'retina_ov', RETINA)
    out = work / 'ov_out'
    bf16 = ovb.cpu_capabilities()['BF16']
    precisions = ['fp32', 'int8'] + (['bf16'] if bf16 else [])
    result = run_tool(config, ckpt, '--out-dir', str(out), '--backend',
                      'openvino', '--precision', *precisions, '--save-ir',
                      '--eval', '--calib-images', '4', '--num-images', '3',
                      '--threads', '1')
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| bbox_mAP torch / ONNX / INT8 / OV FP32' in result.stdout
    assert '| CPU |' in result.stdout
    assert '| OpenVINO FP32 ran |' in result.stdout
    files = set(os.listdir(out))
    assert {'end2end.onnx', 'end2end_int8.onnx', 'end2end.xml', 'end2end.bin',
            'end2end_int8.xml', 'end2end_int8.bin'} <= files
    report = json.load(open(out / 'deploy_report.json'))
    ov = report['openvino']
    assert ov['cpu']['AVX2'] is not None and ov['version']
    assert set(ov['precisions']) == set(precisions)
    assert ov['precisions']['fp32']['compiled']['hint'] == 'fp32'
    assert ov['precisions']['fp32']['compiled']['threads'] == 1
    # OpenVINO FP32 passes the exact check onnxruntime passes
    check = ov['precisions']['fp32']['check']
    assert check['images'] == 3 and check['mismatched_images'] == 0
    assert check['max_box_err_px'] <= 1e-2
    for p in precisions:
        name = f'openvino_{p}'
        assert report['latency_ms'][name] > 0
        assert 0 <= report['eval'][name]['bbox_mAP'] <= 1
    assert abs(report['eval']['openvino_fp32']['bbox_mAP'] -
               report['eval']['torch']['bbox_mAP']) <= 1e-3
    if bf16:
        assert ov['precisions']['bf16']['compiled']['hint'] == 'bf16'
    # a plain OpenVINO process (nothing of torch, onnxruntime or OpenMMLab
    # importable) runs the ONNX file and the IR alike
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(
        np.float32)
    np.savez(work / 'ov_in.npz', x=x)
    script = work / 'plain_ov.py'
    script.write_text(PLAIN_OV)
    ran = subprocess.run(
        [sys.executable, str(script), str(work / 'ov_got.npz'),
         str(work / 'ov_in.npz'), str(out / 'end2end.onnx'),
         str(out / 'end2end.xml'), str(out / 'end2end_int8.xml')],
        capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    got = np.load(work / 'ov_got.npz')
    assert np.array_equal(got['dets0'], got['dets1'])
    assert got['dets2'].shape[-1] == 5


def _one_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error:'), lines
    return lines[0]


def test_deploy_without_openvino_is_one_line(work, tmp_path):
    config, ckpt = _setup(work, 'retina_noov', RETINA)
    out = tmp_path / 'no_ov'
    script = import_blocker('openvino') + (
        'import runpy, sys\n'
        f'sys.argv = [{TOOL!r}] + sys.argv[1:]\n'
        f'runpy.run_path({TOOL!r}, run_name="__main__")\n')
    result = subprocess.run(
        [sys.executable, '-c', script, config, ckpt, '--out-dir', str(out),
         '--backend', 'openvino'], capture_output=True, text=True,
        timeout=600)
    line = _one_error(result)
    assert 'openvino' in line and 'pip install' in line, line
    assert not out.exists()


def test_deploy_bad_backend_options_are_one_line(work, tmp_path):
    config, ckpt = _setup(work, 'retina_badov', RETINA)
    out = tmp_path / 'bad'
    line = _one_error(run_tool(config, ckpt, '--out-dir', str(out),
                               '--precision', 'bf16'))
    assert 'bf16 needs --backend openvino' in line
    line = _one_error(run_tool(config, ckpt, '--out-dir', str(out),
                               '--save-ir'))
    assert '--save-ir' in line and 'openvino' in line
    assert not out.exists()



def _fake_report(config, checkpoint, precisions):
    torch_map = 0.6 if 'plain' in config else 0.65
    drop = dict(a=0.0, b=0.002, c=0.001)[os.path.basename(
        os.path.dirname(checkpoint))] + (0 if 'plain' in config else 0.001)
    names = ['torch', 'onnx', 'onnx_int8'] + [f'openvino_{p}'
                                               for p in precisions]
    return dict(
        eval={n: dict(bbox_mAP=torch_map - (drop if 'openvino' in n else 0))
              for n in names},
        latency_ms={n: 10.0 if n in ('torch', 'onnx') else 2.0
                    for n in names},
        openvino=dict(precisions={p: dict(compiled=dict(hint=p))
                                  for p in precisions}))


def test_backend_study_from_a_study_json(tmp_path, monkeypatch):
    from acnet_backbone.deploy import end2end
    from acnet_backbone.study.backends import backend_study, runs_from_study
    calls = []

    def fake_deploy(config, checkpoint, out_dir, **kwargs):
        calls.append((config, checkpoint, kwargs))
        report = _fake_report(config, checkpoint, kwargs['precisions'])
        os.makedirs(out_dir, exist_ok=True)
        json.dump(report, open(os.path.join(out_dir, 'deploy_report.json'),
                               'w'))
        return report

    monkeypatch.setattr(end2end, 'deploy_checkpoint', fake_deploy)
    # a study JSON as tools/compare.py writes it; a run's own config.py
    # beside its checkpoint wins over the config path
    rows = []
    for name in ('plain', 'acb'):
        for s in 'abc':
            ckpt = tmp_path / name / s / 'iter_10.pth'
            ckpt.parent.mkdir(parents=True)
            if name == 'acb':
                (ckpt.parent / 'config.py').write_text('')
            rows.append(dict(config=name, config_path=f'cfg/{name}.py',
                             seed='abc'.index(s), checkpoint=str(ckpt)))
    study = tmp_path / 'compare.json'
    study.write_text(json.dumps(dict(runs=rows)))
    runs = runs_from_study(str(study))
    assert runs[0]['config'] == 'cfg/plain.py' and runs[0]['name'] == 'plain'
    assert runs[3]['config'].endswith('acb/a/config.py')
    result = backend_study(str(study), str(tmp_path / 'w'),
                           precisions=['fp32', 'int8'], num_images=5)
    assert len(calls) == 6 and all(
        c[2]['backend'] == 'openvino' and c[2]['evaluate'] and
        c[2]['precisions'] == ['fp32', 'int8'] and c[2]['num_images'] == 5
        for c in calls)
    summary = {(r['name'], r['runtime']): r for r in result['summary']}
    fp32 = summary[('plain', 'openvino_fp32')]
    assert fp32['n'] == 3 and fp32['drop_mean'] == pytest.approx(0.001)
    lo, hi = fp32['drop_ci95']
    assert lo < 0.001 < hi
    assert fp32['speedup_median'] == pytest.approx(5.0)
    assert summary[('plain', 'onnx')]['drop_mean'] == 0
    assert ('plain', 'openvino_bf16') not in summary
    assert result['runs'][0]['ran'] == dict(fp32=dict(hint='fp32'),
                                            int8=dict(hint='int8'))
    # the second config's drop minus the first's, paired by seed
    diffs = {(d['name'], d['runtime']): d for d in result['differences']}
    ov = diffs[('acb', 'openvino_fp32')]
    assert ov['baseline'] == 'plain' and ov['seeds'] == [0, 1, 2]
    assert ov['per_seed'] == pytest.approx([0.001] * 3)
    assert ov['mean'] == pytest.approx(0.001)
    assert diffs[('acb', 'onnx')]['per_seed'] == [0, 0, 0]
    assert ('plain', 'onnx') not in diffs and ('acb', 'torch') not in diffs
    assert json.load(open(tmp_path / 'w' / 'backend_study.json')) == result
    # finished runs are read back, not redeployed
    again = backend_study(str(study), str(tmp_path / 'w'),
                          precisions=['fp32', 'int8'])
    assert len(calls) == 6 and again['summary'] == result['summary']
    # a file that is no study: one line
    bad = tmp_path / 'bad.json'
    bad.write_text('[]')
    with pytest.raises(InputError, match='not a study JSON'):
        runs_from_study(str(bad))
    # runs picked by config name, in the order asked for
    picked = runs_from_study(str(study), ['acb', 'plain'])
    assert [(r['name'], r['seed']) for r in picked] == [
        ('acb', 0), ('acb', 1), ('acb', 2), ('plain', 0), ('plain', 1),
        ('plain', 2)]
    with pytest.raises(InputError, match='no run of other'):
        runs_from_study(str(study), ['other'])
    with pytest.raises(InputError, match='study JSON'):
        backend_study([('cfg.py', 'x.pth')], str(tmp_path / 'w2'),
                      names=['plain'])


@needs_openvino
def test_large_detector_latency_on_random_weights(work, tmp_path):
    from acnet_backbone.study.backends import large_detector_latency
    config, _ = _setup(work, 'retina_large', RETINA)
    report = large_detector_latency(config, str(tmp_path / 'large'),
                                    shape=(64, 96), repeats=2,
                                    precisions=['fp32', 'int8'],
                                    calib_images=2)
    lat = report['latency_ms']
    assert lat['input_shape'][-2:] == [64, 96] and lat['images'] == 3
    assert lat['threads'] == 1
    for name in ('torch', 'onnx', 'onnx_int8', 'openvino_fp32',
                 'openvino_int8'):
        assert lat[name] > 0
    assert report['openvino']['precisions']['fp32']['check'][
        'mismatched_images'] == 0


@needs_openvino
def test_layer_errors_rank_layers(tmp_path):
    from acnet_backbone.study.backends import layer_errors
    path = tmp_path / 'tiny.onnx'
    _export(TinyEnd2End(), path)
    xs = _calib(2, seed=3)
    same = layer_errors(str(path), xs, 'fp32')
    assert [r['op'] for r in same] == ['Conv', 'Conv']
    assert all(r['rel_err'] == 0 for r in same)
    if ovb.cpu_capabilities()['BF16']:
        rows = layer_errors(str(path), xs, 'bf16')
        assert all(0 < r['rel_err'] < 0.05 for r in rows), rows
