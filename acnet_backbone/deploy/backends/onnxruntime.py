"""The one onnxruntime session builder of the package (CPU provider)."""
from typing import Optional


def ort_session(onnx_path: str, custom_ops: Optional[str] = None,
                threads: Optional[int] = None):
    """A plain onnxruntime CPU session of ``onnx_path``.

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
