"""bbox mAP of INT8 outputs recorded on another CPU (an emulated AVX2-only
one), through the same mmdeploy evaluation as ``tools/deploy.py --eval``.

    python evaluate.py record DEPLOY_DIR INPUTS.npz
        the network inputs of the evaluation (mmdeploy's test pipeline and
        data preprocessor over the test set), in order
    python evaluate.py replay DEPLOY_DIR INPUTS.npz OUT.json NAME=OUTPUTS.npz ...
        the bbox mAP of every run of every OUTPUTS.npz (written by
        run_files.py on INPUTS.npz), each run answering the evaluation's
        inputs with its recorded outputs, and which runs match which bit
        for bit
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..'))


class Recorder:
    """A session that keeps every input it is asked to run."""

    def __init__(self, session):
        self.session, self.inputs = session, []

    def run(self, names, feeds):
        self.inputs.append(feeds['input'].copy())
        return self.session.run(names, feeds)


class Replay:
    """A session that answers each recorded input with a recorded output."""

    def __init__(self, inputs, outputs):
        self.index = {x.tobytes(): i for i, x in enumerate(inputs)}
        self.outputs = outputs

    def run(self, names, feeds):
        i = self.index[feeds['input'].tobytes()]  # KeyError: not recorded
        return list(self.outputs[i])


def _deployed(folder):
    from mmengine.config import Config
    return (os.path.join(folder, 'fused_config.py'),
            Config.fromfile(os.path.join(folder, 'deploy_config.py')),
            os.path.join(folder, 'end2end.onnx'))


def record(folder, inputs_npz):
    import acnet_backbone  # noqa: F401
    from acnet_backbone.deploy.backends import backend_for
    from acnet_backbone.deploy.evaluate import evaluate_sessions
    cfg_path, dcfg, onnx_path = _deployed(folder)
    rec = Recorder(backend_for('onnxruntime').session(
        os.path.join(folder, 'end2end_int8.onnx'), 'int8', 1))
    with tempfile.TemporaryDirectory() as tmp:
        metrics = evaluate_sessions(cfg_path, dcfg, onnx_path, dict(rec=rec),
                                    tmp)
    np.savez(inputs_npz, n=len(rec.inputs),
             **{f'x{i}': x for i, x in enumerate(rec.inputs)})
    print(f'{len(rec.inputs)} inputs; native ORT INT8 bbox_mAP '
          f'{metrics["rec"]["bbox_mAP"]:.3f}')


def replay(folder, inputs_npz, out_json, *runs):
    import acnet_backbone  # noqa: F401
    from acnet_backbone.deploy.evaluate import evaluate_sessions
    cfg_path, dcfg, onnx_path = _deployed(folder)
    data = np.load(inputs_npz)
    inputs = [data[f'x{i}'] for i in range(int(data['n']))]
    outputs, sessions = {}, {}
    for spec in runs:
        name, path = spec.split('=', 1)
        got = np.load(path)
        for key in sorted({k.split('_dets')[0] for k in got.files
                           if '_dets' in k}):
            run = f'{name}:{key}'
            outputs[run] = [(got[f'{key}_dets{i}'], got[f'{key}_labels{i}'])
                            for i in range(len(inputs))]
            sessions[run] = Replay(inputs, outputs[run])
    with tempfile.TemporaryDirectory() as tmp:
        metrics = evaluate_sessions(cfg_path, dcfg, onnx_path, sessions, tmp)
    same = {a: [b for b in outputs if b != a and all(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        for x, y in zip(outputs[a], outputs[b]))] for a in outputs}
    result = {run: dict(bbox_mAP=metrics[run]['bbox_mAP'],
                        bbox_mAP_50=metrics[run]['bbox_mAP_50'],
                        bit_identical_to=same[run]) for run in outputs}
    with open(out_json + '.tmp', 'w') as f:
        json.dump(dict(inputs=len(inputs), runs=result), f, indent=1)
    os.replace(out_json + '.tmp', out_json)
    for run, r in result.items():
        print(run, f'{r["bbox_mAP"]:.3f}', r['bit_identical_to'])


if __name__ == '__main__':
    dict(record=record, replay=replay)[sys.argv[1]](*sys.argv[2:])
