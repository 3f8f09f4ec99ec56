"""Safe checkpoint loading, on every torch: mmengine checkpoints load, pickled
code is refused before it runs (through torch's loader, the restricted
unpickler and mmengine's checkpoint loaders)."""
import io
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import acnet_backbone  # noqa: F401  (registers the allow-list)
from acnet_backbone.errors import InputError
from acnet_backbone.safe_load import (RefusedPickleError, RestrictedUnpickler,
                                      UnsafeCheckpointError,
                                      load_from_http_safely,
                                      load_from_local_safely,
                                      restricted_torch_load, safe_load)
from acnet_backbone.testing import requires_torch_feature


def _torch_weights_only(path):
    return torch.load(path, weights_only=True)


# torch's own weights-only loader reads mmengine checkpoints only where the
# allow-list can be registered in it
LOADERS = [
    pytest.param(_torch_weights_only, id='torch.load-weights_only',
                 marks=requires_torch_feature('add_safe_globals')),
    pytest.param(restricted_torch_load, id='restricted-unpickler'),
    pytest.param(safe_load, id='safe_load'),
    pytest.param(load_from_local_safely, id='mmengine-local-loader'),
]


def _mmengine_style_checkpoint():
    buf = HistoryBuffer()
    buf.update(1.5)
    empty = HistoryBuffer()
    hub = MessageHub.get_instance('acnet_safe_load_test')
    hub.update_scalar('train/loss', np.float32(0.25))
    model = torch.nn.Conv2d(2, 3, 3)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(1, 2, 5, 5)).sum().backward()
    optim.step()
    return dict(
        meta=dict(epoch=3, seed=np.int64(7), lr=np.float64(0.01),
                  arr=np.arange(4, dtype=np.float32),
                  flags=np.array([True, False]), dtype=np.dtype('int16'),
                  classes=('a', 'b'), empty=b'', data=b'xy', ids={1, 2},
                  device=torch.device('cpu'), tdtype=torch.bool),
        state_dict=model.state_dict(),
        optimizer=optim.state_dict(),
        message_hub=hub.state_dict(),
        buffers=[buf, empty],
        param=torch.nn.Parameter(torch.ones(2)),
        strided=torch.arange(6.).view(2, 3).t())


@pytest.mark.parametrize('load', LOADERS)
def test_mmengine_style_checkpoint_loads(tmp_path, load):
    ckpt = _mmengine_style_checkpoint()
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = load(str(path))
    meta = loaded['meta']
    assert meta['seed'] == 7 and meta['epoch'] == 3
    assert np.array_equal(meta['arr'], np.arange(4))
    assert meta['dtype'] == np.dtype('int16')
    assert (meta['empty'], meta['data'], meta['ids']) == (b'', b'xy', {1, 2})
    assert meta['tdtype'] is torch.bool
    assert loaded['buffers'][0].current() == 1.5
    assert loaded['buffers'][0].min() == 1.5
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.25
    assert isinstance(loaded['param'], torch.nn.Parameter)
    assert torch.equal(loaded['strided'], ckpt['strided'])
    assert loaded['state_dict']._metadata == ckpt['state_dict']._metadata
    assert torch.equal(loaded['optimizer']['state'][0]['momentum_buffer'],
                       ckpt['optimizer']['state'][0]['momentum_buffer'])


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


class _System:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f'touch {self.target}', ))


@pytest.mark.parametrize('payload', [_Hostile, _System])
@pytest.mark.parametrize('load', LOADERS)
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, load, payload):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': payload(str(target))}, path)
    with pytest.raises((pickle.UnpicklingError, UnsafeCheckpointError)):
        load(str(path))
    assert not target.exists()


def test_safe_load_names_the_file(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'x': _System(str(target))}, path)
    with pytest.raises(UnsafeCheckpointError, match='not allow-listed'):
        safe_load(path)
    assert not target.exists()


def test_torch_weights_only_refuses_on_every_torch(tmp_path):
    """Importing the package never widens torch's own weights-only loader
    beyond the allow-list."""
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'x': _System(str(target))}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not target.exists()


@requires_torch_feature('weights_only_default')
def test_default_torch_load_refuses_too(tmp_path):
    """Importing the package must not switch weights_only off globally."""
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(_Hostile(str(target)), path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not target.exists()


@pytest.mark.parametrize('load', LOADERS)
def test_getattr_standin_is_restricted(tmp_path, load):
    """A pickle that uses builtins.getattr on anything but HistoryBuffer's
    statistics methods is refused (the real getattr would open the door to
    torch.serialization internals)."""
    class Reach:
        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    class ReachPrivate:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'getattr.pth'
    for payload in (Reach(), ReachPrivate()):
        torch.save({'x': payload}, path)
        with pytest.raises((pickle.UnpicklingError, UnsafeCheckpointError)):
            load(str(path))


def test_mmengine_loader_goes_through_the_allow_list(tmp_path):
    """What --resume, load_from and Pretrained call: mmengine's
    CheckpointLoader, pointed at this package's safe loader at import on
    every torch (mmengine's own leaves weights_only to torch's default,
    False before torch 2.6); a refused pickle is UnsafeCheckpointError, an
    InputError the tools print in one line."""
    from mmengine.runner.checkpoint import CheckpointLoader
    good, evil = tmp_path / 'good.pth', tmp_path / 'evil.pth'
    target = tmp_path / 'pwned'
    torch.save(_mmengine_style_checkpoint(), good)
    torch.save({'x': _System(str(target))}, evil)
    assert CheckpointLoader.load_checkpoint(str(good))['meta']['seed'] == 7
    with pytest.raises(UnsafeCheckpointError, match='refused to load'):
        CheckpointLoader.load_checkpoint(str(evil))
    assert not target.exists()
    assert issubclass(UnsafeCheckpointError, InputError)
    assert CheckpointLoader._get_checkpoint_loader(
        str(good)) is load_from_local_safely


def test_http_loader_downloads_once_and_loads_safely(tmp_path):
    """The http(s):// / torchvision:// loader of older torch, exercised
    offline with a file:// URL (urllib reads it as it reads https)."""
    src = tmp_path / 'src'
    src.mkdir()
    torch.save(_mmengine_style_checkpoint(), src / 'good.pth')
    torch.save({'x': _System(str(tmp_path / 'pwned'))}, src / 'evil.pth')
    cache = tmp_path / 'hub'
    loaded = load_from_http_safely((src / 'good.pth').as_uri(),
                                   model_dir=str(cache))
    assert loaded['meta']['seed'] == 7 and (cache / 'good.pth').is_file()
    with pytest.raises(UnsafeCheckpointError):
        load_from_http_safely((src / 'evil.pth').as_uri(),
                              model_dir=str(cache))
    assert not (tmp_path / 'pwned').exists()


# hand-written protocol-2 pickles that reach past a find_class-only guard
CRAFTED = {
    # BUILD on an allow-listed *class*: setattr on it
    'build-on-class':
    b'\x80\x02ccollections\nOrderedDict\n}X\x01\x00\x00\x00xK\x01sb.',
    # APPENDS on a non-list calls its .extend / .append
    'appends-on-non-list':
    b'\x80\x02ccollections\nOrderedDict\n)R(K\x01e.',
    # calling what a stand-in returned (HistoryBuffer.min) is not allowed
    'call-a-returned-function':
    b'\x80\x02c__builtin__\ngetattr\ncmmengine.logging.history_buffer\n'
    b'HistoryBuffer\nX\x03\x00\x00\x00min\x86R)R.',
    # a persistent id that is not a torch storage
    'persistent-id-module': b'\x80\x02X\x06\x00\x00\x00module\x85Q.',
    # protocol 0 instantiation
    'inst-opcode': b'(ios\nsystem\nX\x04\x00\x00\x00true\x85.',
    # an import by name
    'global-os-system': b'\x80\x02cos\nsystem\n.',
}


@pytest.mark.parametrize('name', sorted(CRAFTED))
def test_restricted_unpickler_refuses_crafted_opcodes(name):
    with pytest.raises(RefusedPickleError):
        RestrictedUnpickler(io.BytesIO(CRAFTED[name])).load()


def test_restricted_unpickler_reads_plain_data():
    obj = {'a': [1, 2.5, 'x', None, True], 'b': (1, 2), 'c': {3},
           'd': b'\x00\xff', 'e': frozenset({1})}
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        data = pickle.dumps(obj, protocol=proto)
        assert RestrictedUnpickler(io.BytesIO(data)).load() == obj
