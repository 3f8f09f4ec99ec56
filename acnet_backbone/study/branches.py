"""What the asymmetric branches of a trained ACResNet did, read from its
checkpoint: per stage, how large the branch scales are (BN gamma in
``'bn'`` mode, the learnable scale in ``'online'`` mode), how much the
branch kernels weigh against the square kernel they fuse into, and whether
the branch BNs' running statistics moved from their init (they learn under
``norm_eval=True`` unless ``acb_norm_eval=True`` or the stage is frozen).

Used by the starting-point study (``make study-start``) to tell why a route
keeps or loses the gain: branches added at fine-tuning with scale 0 that
stay near 0 cannot have changed the network.
"""
import re
from collections import defaultdict
from typing import Dict, Mapping, Optional

import torch

_SITE = re.compile(r'^(?P<site>(?:.*\.)?layer(?P<stage>\d+)\..*?)\.acb\.'
                   r'(?P<branch>hor|ver)_(?P<what>conv\.weight|bn\.weight|'
                   r'bn\.running_mean|bn\.running_var|scale)$')


def _branch_kernels(state: Mapping[str, torch.Tensor], eps: float):
    """``{(stage, site): {branch: dict(scale, kernel, moved)}}``."""
    parts = defaultdict(dict)
    for key, value in state.items():
        m = _SITE.match(key)
        if m:
            parts[(int(m['stage']), m['site'], m['branch'])][m['what']] = \
                value.float()
    sites = defaultdict(dict)
    for (stage, site, branch), p in parts.items():
        if 'conv.weight' not in p:
            continue
        if 'scale' in p:  # online: the scale multiplies the branch kernel
            scale, eff, moved = p['scale'], p['scale'], None
        elif 'bn.weight' in p:
            scale = p['bn.weight']
            eff = scale / torch.sqrt(p['bn.running_var'] + eps)
            moved = float(torch.maximum(
                p['bn.running_mean'].abs().max(),
                (p['bn.running_var'] - 1).abs().max()))
        else:
            continue
        sites[(stage, site)][branch] = dict(
            scale=scale, kernel=eff[:, None, None, None] * p['conv.weight'],
            moved=moved)
    return sites


def branch_stats(state: Mapping[str, torch.Tensor],
                 eps: float = 1e-5) -> Dict[int, Dict]:
    """Per stage (1-4) of the ACResNet in ``state`` (a ``state_dict``, any
    key prefix): ``scale_abs_mean`` (mean |gamma| or |scale| of both
    branches), ``kernel_share`` (Frobenius norm of the two branch kernels,
    scaled as they fuse, over the square kernel's norm, mean over the
    stage's sites), ``stats_moved`` (largest change of a branch BN's
    running mean/var from 0/1; ``None`` in ``'online'`` mode) and ``sites``.
    The square kernel is compared before its own BN, which scales both
    alike. Empty for a checkpoint without ACB."""
    sites = _branch_kernels(state, eps)
    out: Dict[int, Dict] = {}
    for (stage, site), branches in sorted(sites.items()):
        square = state.get(f'{site}.weight')
        if square is None or len(branches) != 2:
            continue
        added = torch.zeros_like(square.float())
        k = square.shape[-1]
        hor, ver = branches['hor']['kernel'], branches['ver']['kernel']
        added[:, :, k // 2:k // 2 + 1, :] += hor
        added[:, :, :, k // 2:k // 2 + 1] += ver
        share = float(added.norm() / square.float().norm().clamp_min(1e-12))
        scales = torch.cat([b['scale'].abs() for b in branches.values()])
        moved = [b['moved'] for b in branches.values()
                 if b['moved'] is not None]
        entry = out.setdefault(stage, dict(scale=[], share=[], moved=[]))
        entry['scale'].append(float(scales.mean()))
        entry['share'].append(share)
        entry['moved'].extend(moved)
    return {stage: dict(
        scale_abs_mean=sum(e['scale']) / len(e['scale']),
        kernel_share=sum(e['share']) / len(e['share']),
        stats_moved=max(e['moved']) if e['moved'] else None,
        sites=len(e['share'])) for stage, e in out.items()}


def checkpoint_branch_stats(checkpoint: str,
                            eps: float = 1e-5) -> Optional[Dict[int, Dict]]:
    """:func:`branch_stats` of a checkpoint file (loaded safely); ``None``
    when it holds no ACB."""
    from ..safe_load import safe_load
    ckpt = safe_load(checkpoint)
    stats = branch_stats(ckpt.get('state_dict', ckpt), eps)
    return stats or None


def route_branches(report: Dict) -> Dict[str, Dict]:
    """Per config of a study report with ACB: per stage, the mean over its
    runs of :func:`checkpoint_branch_stats` of the fine-tuned checkpoints
    (``{config: {stage: {...}}}``; configs without ACB left out)."""
    per_config = defaultdict(list)
    for run in report['runs']:
        stats = checkpoint_branch_stats(run['checkpoint'])
        if stats:
            per_config[run['config']].append(stats)
    out = {}
    for config, runs in per_config.items():
        stages = sorted(set().union(*runs))
        out[config] = {str(stage): {
            key: _mean([r[stage][key] for r in runs if stage in r])
            for key in ('scale_abs_mean', 'kernel_share', 'stats_moved')}
            for stage in stages}
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def plot_routes(report: Dict, branches: Dict[str, Dict], out_file: str,
                title: Optional[str] = None) -> None:
    """The starting-point figure: fine-tuning loss per config (mean over
    seeds), and the branch kernels' weight against the square kernel per
    stage for the configs with ACB."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from ..staging import save_figure
    fig, (ax_loss, ax_share) = plt.subplots(1, 2, figsize=(12, 4.5))
    # one colour per config in both panels
    colours = {s['config']: f'C{i}' for i, s in enumerate(report['summary'])}
    curves = defaultdict(list)
    for run in report['runs']:
        if run.get('loss_curve'):
            curves[run['config']].append(dict(run['loss_curve']))
    for config, runs in curves.items():
        its = sorted(set.intersection(*(set(r) for r in runs)))
        ax_loss.plot(its, [sum(r[i] for r in runs) / len(runs) for i in its],
                     label=f'{config} (n={len(runs)})',
                     color=colours.get(config))
    ax_loss.set(xlabel='iteration', ylabel='training loss (mean over seeds)',
                title='fine-tuning loss')
    ax_loss.set_yscale('log')
    ax_loss.legend(fontsize=7)
    for config, stages in branches.items():
        xs = sorted(stages, key=int)
        ax_share.plot([int(s) for s in xs],
                      [stages[s]['kernel_share'] for s in xs], 'o-',
                      label=config, color=colours.get(config))
    ax_share.set(xlabel='stage', ylabel='|branch kernels| / |square kernel|',
                 title='weight of the asymmetric branches after fine-tuning')
    ax_share.set_xticks([1, 2, 3, 4])
    if branches:
        ax_share.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out_file)
