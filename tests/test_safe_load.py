import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import acnet_backbone  # noqa: F401  (registers the allow-list)
from acnet_backbone.safe_load import UnsafeCheckpointError, safe_load


def test_mmengine_style_checkpoint_loads_weights_only(tmp_path):
    buf = HistoryBuffer()
    buf.update(1.5)
    empty = HistoryBuffer()
    hub = MessageHub.get_instance('acnet_safe_load_test')
    hub.update_scalar('train/loss', np.float32(0.25))
    ckpt = dict(
        meta=dict(epoch=3, seed=np.int64(7), lr=np.float64(0.01),
                  arr=np.arange(4, dtype=np.float32),
                  flags=np.array([True, False]), dtype=np.dtype('int16')),
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
        buffers=[buf, empty])
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['seed'] == 7
    assert np.array_equal(loaded['meta']['arr'], np.arange(4))
    assert loaded['buffers'][0].current() == 1.5
    assert loaded['buffers'][0].min() == 1.5
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.25
    assert safe_load(path)['meta']['epoch'] == 3


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Hostile(str(target))}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with pytest.raises(UnsafeCheckpointError, match='not allow-listed'):
        safe_load(path)
    assert not target.exists()


def test_getattr_standin_is_restricted(tmp_path):
    """A pickle that uses builtins.getattr on anything but HistoryBuffer's
    statistics methods is refused (the real getattr would open the door to
    torch.serialization internals)."""
    class Reach:
        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': Reach()}, path)
    with pytest.raises(Exception) as info:
        torch.load(path, weights_only=True)
    assert 'refused' in str(info.value) or 'Unpickl' in type(info.value).__name__

    class ReachPrivate:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    torch.save({'x': ReachPrivate()}, path)
    with pytest.raises(Exception, match='refused'):
        torch.load(path, weights_only=True)


def test_default_torch_load_refuses_too(tmp_path):
    """Importing the package must not switch weights_only off globally."""
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(_Hostile(str(target)), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not target.exists()
