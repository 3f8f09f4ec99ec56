"""Inference runtimes of the deployed files behind one interface
(:class:`.base.DeployBackend`, registered in :data:`.base.DEPLOY_BACKENDS`):
one module per runtime, each importing its runtime only when called.
Importing this package registers them all."""
from . import onnxruntime, openvino  # noqa: F401 (registration)
from .base import (ALL_PRECISIONS, DEPLOY_BACKENDS, REFERENCE,
                   DeployBackend, Session, all_backends, backend_for,
                   backend_names, plan_backend, register_backend,
                   session_labels)

__all__ = [
    'ALL_PRECISIONS', 'DEPLOY_BACKENDS', 'REFERENCE', 'DeployBackend',
    'Session', 'all_backends', 'backend_for', 'backend_names',
    'plan_backend', 'register_backend', 'session_labels'
]
