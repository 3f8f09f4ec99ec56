"""Inference backends of deployed files: one module per runtime
(:mod:`.onnxruntime`), each importing its runtime only when called."""
