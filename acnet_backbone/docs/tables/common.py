"""What every renderer shares: how configs and metrics are named
(:data:`LABELS`, :data:`LABEL_SETS`), where a table goes (:class:`Context`)
and the number, interval and Markdown formatting helpers."""
import json
import os.path as osp
import posixpath
from dataclasses import dataclass
from typing import Optional, Sequence

from ...tables import markdown_table

#: How configs and study groups are named in the tables (anything else is
#: shown by its config name).
LABELS = {
    'retinanet_fcnresnet18_fpn_shapes': 'plain ResNet-18',
    'retinanet_acresnet18_fpn_shapes': "ACResNet-18 'bn'",
    'retinanet_acresnet18-online_fpn_shapes': "ACResNet-18 'online'",
    'retinanet_fcnresnet18_fpn_shapes-ft': 'from ResNet-18',
    'retinanet_acresnet18_fpn_shapes-ft': "from ACResNet-18 'bn'",
    'fcnresnet18_shapes-cls': 'ResNet-18 (`fcnresnet18_shapes-cls`)',
    'acresnet18_shapes-cls': "ACResNet-18 'bn' (`acresnet18_shapes-cls`)",
    'rtmdet_tiny_shapes': 'RTMDet-tiny, CSPNeXt',
    'rtmdet_tiny-acb_shapes': "RTMDet-tiny, ACB CSPNeXt ('bn')",
    'fcn32s_fcnresnet18_shapes': 'FCN-32s, plain ResNet-18',
    'fcn32s_acresnet18_shapes': 'FCN-32s, ACResNet-18',
    'fcn-d8_fcnresnet18_shapes': 'd8 FCN, plain ResNet-18',
    'fcn-d8_acresnet18_shapes': 'd8 FCN, ACResNet-18',
    'fcn32s_fcnresnet18_shapes-ft': 'FCN-32s from ResNet-18',
    'fcn32s_acresnet18_shapes-ft': 'FCN-32s from ACResNet-18',
    'fcn-d8_fcnresnet18_shapes-ft': 'd8 FCN from ResNet-18',
    'fcn-d8_acresnet18_shapes-ft': 'd8 FCN from ACResNet-18',
    # the starting-point study: START -> fine-tuned backbone
    'retinanet_acresnet18-add-g0_fpn_shapes-ft': "plain -> ACB 'bn', gamma 0",
    'retinanet_acresnet18-add-g1-3_fpn_shapes-ft': "plain -> ACB 'bn', gamma 1/3",
    'retinanet_acresnet18-add-g1-3-s2-4_fpn_shapes-ft':
        "plain -> ACB 'bn', gamma 1/3, stages 2-4",
    'retinanet_acresnet18-online-add-g0_fpn_shapes-ft':
        "plain -> ACB 'online', scale 0",
    'retinanet_acresnet18-online-add-g1-3_fpn_shapes-ft':
        "plain -> ACB 'online', scale 1/3",
    'retinanet_fcnresnet18-fused-acb_fpn_shapes-ft': 'ACB fused -> plain',
    'fcn-d8_acresnet18-add-g0_shapes-ft': "d8 FCN, plain -> ACB 'bn', gamma 0",
    'fcn-d8_acresnet18-add-g1-3_shapes-ft':
        "d8 FCN, plain -> ACB 'bn', gamma 1/3",
    'fcn-d8_acresnet18-online-add-g0_shapes-ft':
        "d8 FCN, plain -> ACB 'online', scale 0",
    'fcn-d8_fcnresnet18-fused-acb_shapes-ft': 'd8 FCN, ACB fused -> plain',
    # real images: the NEON tree crowns (configs/trees)
    'retinanet_fcnresnet18_fpn_trees': 'plain ResNet-18',
    'retinanet_acresnet18_fpn_trees': "ACResNet-18 'bn'",
    'retinanet_fcnresnet18_fpn_trees-ft': 'plain -> plain',
    'retinanet_acresnet18-add-g1-3_fpn_trees-ft':
        "plain -> ACB 'bn', gamma 1/3",
    'retinanet_acresnet18_fpn_trees-ft': "ACB -> ACB 'bn'",
}

#: Shorter names for the rows of the results at a glance, where a study has
#: several differences.
SHORT = {
    'retinanet_acresnet18_fpn_shapes': "'bn'",
    'retinanet_acresnet18-online_fpn_shapes': "'online'",
}

#: Metrics given in percent (two decimals); the others are fractions (three).
PERCENT = ('mIoU', 'mAcc', 'aAcc', 'top1', 'top5')


@dataclass
class Context:
    """Where a table is written: ``root`` (the repository) and ``doc`` (the
    Markdown file, relative to ``root``)."""
    root: str
    doc: str

    def load(self, path: str):
        with open(osp.join(self.root, path), encoding='utf-8') as f:
            return json.load(f)

    def link(self, path: str) -> str:
        """``path`` (relative to the root) relative to the doc's folder."""
        anchor = ''
        if '#' in path:
            path, anchor = path.split('#', 1)
            anchor = '#' + anchor
        start = posixpath.dirname(self.doc.replace(osp.sep, '/')) or '.'
        return posixpath.relpath(path, start) + anchor


#: Other names for some configs in one study's tables (``labels=<set>``).
LABEL_SETS = {
    'start': {
        'retinanet_fcnresnet18_fpn_shapes-ft': 'plain -> plain',
        'retinanet_acresnet18_fpn_shapes-ft': "ACB -> ACB 'bn' (the paper's)",
        'fcn-d8_fcnresnet18_shapes-ft': 'd8 FCN, plain -> plain',
        'fcn-d8_acresnet18_shapes-ft': "d8 FCN, ACB -> ACB 'bn'",
    },
}


def label(name: str, labels: Optional[str] = None) -> str:
    """How a config is named in a table (``labels``: a set of
    :data:`LABEL_SETS` first)."""
    if labels is not None and labels not in LABEL_SETS:
        raise TypeError(f'unknown labels {labels!r} (known: '
                        f'{", ".join(sorted(LABEL_SETS))})')
    names = LABEL_SETS.get(labels, {})
    return names.get(name) or LABELS.get(name, f'`{name}`')


def short(metric: str) -> str:
    return metric.rsplit('/', 1)[-1]


def digits(metric: str) -> int:
    return 2 if short(metric) in PERCENT else 3


def num(value, nd: int = 3, sign: bool = False) -> str:
    """``value`` with ``nd`` decimals (``sign``: always signed); ``-`` for
    None."""
    if value is None:
        return '-'
    return f'{value:+.{nd}f}' if sign else f'{value:.{nd}f}'


def ci(interval, nd: int = 3, sign: bool = True) -> str:
    """``[lo, hi]``, signed for differences, unsigned for means."""
    if not interval:
        return '-'
    return f'[{num(interval[0], nd, sign)}, {num(interval[1], nd, sign)}]'


def sci(value) -> str:
    return f'{value:.1e}'


def seed_range(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f'{seeds[0]}-{seeds[-1]}'
    return ', '.join(str(s) for s in seeds)


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """The table as one string (the package's one table writer)."""
    return '\n'.join(markdown_table(headers, rows))
