import os
import sys

import pytest
import torch

from acnet_backbone.deploy.backends import (DEPLOY_BACKENDS, DeployBackend,
                                            register_backend)
from acnet_backbone.deploy.backends.onnxruntime import ort_session
from acnet_backbone.testing import randomize_bn, rel_err  # noqa: F401

sys.path.insert(0, os.path.dirname(__file__))
# one thread per xdist worker, so that parallel workers do not oversubscribe
torch.set_num_threads(1 if os.environ.get('PYTEST_XDIST_WORKER') else
                      max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def log_lines(fn):
    """Call ``fn`` and return the messages mmengine's current logger got."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
    return records



class SingleThreadOnnxRuntime(DeployBackend):
    """A runtime added the way the deploy guide says: onnxruntime with one
    intra-op thread, whatever is asked (a real runtime, not a stand-in);
    registered for one test by :func:`added_backend`."""
    name = 'onnxruntime_1t'
    display = 'onnxruntime 1 thread'
    precisions = ('fp32', )

    def version(self):
        import onnxruntime
        return onnxruntime.__version__

    def session(self, path, precision, threads=None, custom_ops=None):
        self.check_precisions([precision], {})
        return ort_session(path, custom_ops, 1)


@pytest.fixture
def added_backend():
    """:class:`SingleThreadOnnxRuntime` registered for one test (its name),
    unregistered afterwards."""
    register_backend(SingleThreadOnnxRuntime)
    try:
        yield SingleThreadOnnxRuntime.name
    finally:
        DEPLOY_BACKENDS._module_dict.pop(SingleThreadOnnxRuntime.name)
