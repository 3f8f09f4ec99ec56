"""A hook for the launcher tests, imported by the runs through
``custom_imports`` (the tests put this folder on PYTHONPATH): it records the
images every rank trains on, and can stop the process once at a given
iteration, as a crash or a killed job would."""
import os
import os.path as osp

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class StudyProbeHook(Hook):

    def __init__(self, out_dir, stop_at=None):
        self.out_dir = out_dir
        self.stop_at = stop_at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        os.makedirs(self.out_dir, exist_ok=True)
        ids = [s.metainfo['img_id'] for s in data_batch['data_samples']]
        with open(osp.join(self.out_dir, f'rank{get_rank()}.txt'), 'a') as f:
            f.write(f'{runner.iter + 1} {get_world_size()} '
                    f'{" ".join(map(str, ids))}\n')
        marker = osp.join(self.out_dir, 'stopped')
        if self.stop_at == runner.iter + 1 and not osp.exists(marker):
            open(marker, 'w').close()
            os._exit(17)
