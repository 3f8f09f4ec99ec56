"""The one-line form of input errors, as the tools print them."""
import pytest

from acnet_backbone.backbones import PretrainedMismatchError
from acnet_backbone.errors import InputError, one_line


class _Bad(InputError):
    pass


def test_plain_message_stays():
    assert one_line(_Bad('a.png has labels outside the 5 classes')) == \
        'a.png has labels outside the 5 classes'


def test_multiline_message_is_joined():
    assert one_line(_Bad('first\n  second\n')) == 'first second'


def test_dataloader_worker_message_gives_the_original():
    """torch's ``ExceptionWrapper.reraise`` message: the worker's whole
    traceback, the original ``module.Class: message`` last."""
    wrapped = _Bad('Caught _Bad in DataLoader worker process 0.\n'
                   'Original Traceback (most recent call last):\n'
                   '  File "x.py", line 3, in f\n'
                   '    raise _Bad(msg)\n'
                   'tests.test_errors._Bad: a.png has labels beyond 4: 9\n')
    assert one_line(wrapped) == 'a.png has labels beyond 4: 9'


def test_real_dataloader_worker_error():
    pytest.importorskip('torch')
    from torch.utils.data import DataLoader, Dataset

    class Data(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise PretrainedMismatchError(f'item {i} does not fit')

    with pytest.raises(PretrainedMismatchError) as err:
        next(iter(DataLoader(Data(), num_workers=1)))
    assert '\n' in str(err.value)  # torch's wrapped form
    assert one_line(err.value) == 'item 0 does not fit'


def test_one_hierarchy_under_one_base():
    from acnet_backbone.deploy.errors import FuseError as DeployFuseError
    from acnet_backbone.errors import AcnetError, FuseError
    from acnet_backbone.study import StudyError, StudyRunError
    assert DeployFuseError is FuseError
    # (SegMapError, an InputError too, needs mmseg: tests/test_segmentation)
    for cls in (InputError, FuseError, PretrainedMismatchError, StudyError,
                StudyRunError):
        assert issubclass(cls, AcnetError), cls
    # bad input (exit 2) vs a failed run (exit 1)
    assert issubclass(StudyError, InputError)
    assert not issubclass(StudyRunError, InputError)
    # the builtin bases they had stay, for callers that catch those
    assert issubclass(InputError, ValueError)
    assert issubclass(FuseError, RuntimeError)


def test_flag_message_maps_arguments_to_flags():
    from acnet_backbone.errors import FuseError, flag_message
    err = FuseError('out/fused.pth exists; pass `force` to overwrite\n')
    assert flag_message(err, dict(force='--force')) == \
        'out/fused.pth exists; pass --force to overwrite'
    # a word that is no argument in backquotes stays as it is
    assert flag_message(FuseError('`num_images` is for segmentors'),
                        dict(force='--force')) == \
        '`num_images` is for segmentors'
