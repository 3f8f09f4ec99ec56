"""Helpers for checking fusion: shared by the tests and the benchmark."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial running statistics and affine parameters, in
    place, so that a fusion bug cannot hide behind fresh BNs (mean 0, var 1,
    gamma 1, beta 0). Returns ``model``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm) and m.running_mean is not None:
                n = m.num_features

                def put(t, values):
                    t.copy_(values.to(t))

                put(m.running_mean, torch.randn(n, generator=gen) * 0.5)
                put(m.running_var, torch.rand(n, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    put(m.weight, torch.rand(n, generator=gen) + 0.5)
                    put(m.bias, torch.randn(n, generator=gen) * 0.2)
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|``, in float64."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def import_blocker(*packages: str) -> str:
    """Python source that makes importing any of ``packages`` (top-level
    names) raise ImportError: the first lines of a script run in a fresh
    interpreter to prove that a deployed file needs none of them."""
    return (
        'import builtins\n'
        '_real_import = builtins.__import__\n'
        f'_BLOCKED = {tuple(packages)!r}\n'
        'def _guarded(name, *a, **k):\n'
        "    if name.split('.')[0] in _BLOCKED:\n"
        "        raise ImportError(f'{name} is blocked')\n"
        '    return _real_import(name, *a, **k)\n'
        'builtins.__import__ = _guarded\n')


def requires_torch_feature(name: str):
    """A pytest ``skipif`` mark: skip where the installed torch lacks feature
    ``name`` (see :data:`acnet_backbone.compat.TORCH_FEATURES`), with a
    one-line reason naming it."""
    import pytest

    from .compat import missing_torch_feature
    reason = missing_torch_feature(name)
    return pytest.mark.skipif(reason is not None, reason=reason or '')
