"""Run end-to-end INT8 files on recorded inputs in plain onnxruntime and
OpenVINO (nothing of torch or OpenMMLab imported, so that it runs under
qemu-user as well as natively), one thread each; writes every output.

    python run_files.py INPUTS.npz OUT.npz TAG=FILE.onnx [TAG=FILE.onnx ...]
"""
import sys

import numpy as np
import onnxruntime as ort
import openvino as ov


def main(inputs: str, out: str, *files: str) -> None:
    data = np.load(inputs)
    xs = [data[f'x{i}'] for i in range(int(data['n']))]
    core = ov.Core()  # one per process
    got = {}
    for spec in files:
        tag, path = spec.split('=', 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options,
                                       providers=['CPUExecutionProvider'])
        compiled = core.compile_model(core.read_model(path), 'CPU', {
            'INFERENCE_PRECISION_HINT': 'f32', 'INFERENCE_NUM_THREADS': 1})
        request = compiled.create_infer_request()
        for i, x in enumerate(xs):
            dets, labels = session.run(['dets', 'labels'], {'input': x})
            got[f'ort_{tag}_dets{i}'], got[f'ort_{tag}_labels{i}'] = \
                dets, labels
            result = request.infer({'input': x})
            got[f'ov_{tag}_dets{i}'] = np.array(
                result[compiled.output('dets')])
            got[f'ov_{tag}_labels{i}'] = np.array(
                result[compiled.output('labels')])
        print(tag, 'ran', len(xs), 'inputs', flush=True)
    np.savez(out, **got)


if __name__ == '__main__':
    main(*sys.argv[1:])
