"""onnxruntime on the CPU: the reference runtime of every deployment (its
FP32 session checks each export) and the INT8 file's runtime."""
from typing import Dict, Optional

from .base import REFERENCE, DeployBackend, register_backend

# the run and report name of each precision's session, and its column head
_NAMES = dict(fp32='onnx', int8='onnx_int8')
_LABELS = dict(fp32='ONNX', int8='INT8')


def ort_session(onnx_path: str, custom_ops: Optional[str] = None,
                threads: Optional[int] = None):
    """A plain onnxruntime CPU session of ``onnx_path``: the one session
    builder of the package.

    Args:
        onnx_path (str): the ONNX file.
        custom_ops (str, optional): an op library to register first
            (mmdeploy's, for two-stage detectors). Defaults to None.
        threads (int, optional): intra-op threads (inter-op: 1); None:
            onnxruntime's choice. Defaults to None.

    Returns:
        onnxruntime.InferenceSession: the session.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    if custom_ops:
        options.register_custom_ops_library(custom_ops)
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_path, options,
                                providers=['CPUExecutionProvider'])


@register_backend
class OnnxRuntimeBackend(DeployBackend):
    """onnxruntime's CPU provider: fp32 (``end2end.onnx``) and int8 (the QDQ
    file ``end2end_int8.onnx``, integer kernels); no bf16 on the CPU. Its
    sessions are ``onnxruntime.InferenceSession`` objects."""
    name = REFERENCE
    display = 'onnxruntime'
    precisions = ('fp32', 'int8')

    def version(self) -> Optional[str]:
        try:
            import onnxruntime
        except ImportError:
            return None
        return onnxruntime.__version__

    def plan(self, precisions, int8: bool, caps=None) -> Dict:
        """The reference runs fp32 always and int8 when asked: nothing runs
        beside it (``precisions`` empty, ``cpu`` None)."""
        chosen = self.check_precisions(precisions or (), caps or {})
        return dict(backend=self.name, int8=int8 or 'int8' in chosen,
                    precisions=[], cpu=None)

    def session(self, path: str, precision: str,
                threads: Optional[int] = None,
                custom_ops: Optional[str] = None):
        self.check_precisions([precision], {})
        return ort_session(path, custom_ops, threads)

    def session_name(self, precision: str) -> str:
        return _NAMES[precision]

    def label(self, precision: str) -> str:
        return _LABELS[precision]
