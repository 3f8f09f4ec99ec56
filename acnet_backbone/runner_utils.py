"""What tools/train.py and tools/test.py share: reading a config the way
mmdet's tools do."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .training import build_runner  # noqa: F401  (the tools' runner)


def load_tool_config(config: str,
                     work_dir: Optional[str] = None,
                     cfg_options: Optional[dict] = None,
                     launcher: str = 'none') -> Config:
    """Load ``config``, apply ``--cfg-options`` and the launcher, and pick the
    work dir (the flag, else the config's, else ``work_dirs/CONFIG_NAME``)."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg
