"""Error paths that had no test, through the package functions: the ACNet
wrapper's fusion that cannot be done (the model left as it was), its branch
norms (explicit and inherited), the study's launcher and plan refusals, the
re-evaluation's refusals (the tools' one-line form: tests/test_compare.py)."""
import pytest
import torch

import acnet_backbone  # noqa: F401
from acnet_backbone import ACNet
from acnet_backbone.convert import count_acb
from acnet_backbone.study import (StudyError, check_launcher,
                                  reevaluate_study, study_plan)
from acnet_backbone.testing import randomize_bn

RESNET = dict(type='ResNet', depth=18, base_channels=8, out_indices=(3, ))


def _branch_norms(net):
    return {type(m.acb.hor_bn).__name__ for _, m in net.acb_modules()}


def test_wrapper_fusion_that_cannot_be_done_changes_nothing():
    net = ACNet(backbone=RESNET, acb_norm_cfg=dict(type='GN', num_groups=2),
                acb_gamma_init=0.5)
    net = randomize_bn(net).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n_acb = count_acb(net)
    with pytest.raises(TypeError, match='GroupNorm'):
        net.switch_to_deploy()
    assert count_acb(net) == n_acb and not net.deploy
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_wrapper_branch_norms_explicit_and_inherited():
    explicit = ACNet(backbone=RESNET, acb_norm_cfg=dict(type='SyncBN'))
    assert _branch_norms(explicit) == {'SyncBatchNorm'}
    inherited = ACNet(backbone=dict(RESNET, norm_cfg=dict(type='SyncBN')))
    assert _branch_norms(inherited) == {'SyncBatchNorm'}
    # frozen pretrained norms (requires_grad=False): branch norms train
    frozen = ACNet(backbone=dict(RESNET, norm_cfg=dict(type='BN',
                                                       requires_grad=False)))
    _, conv = frozen.acb_modules()[-1]
    assert conv.acb.hor_bn.weight.requires_grad


@pytest.mark.parametrize('launcher, gpus, words', [
    ('none', 0, 'at least 1'),
    ('none', 2, 'needs `launcher` pytorch or slurm'),
    ('mpi', 1, "unknown launcher 'mpi'"),
])
def test_check_launcher_refusals(launcher, gpus, words):
    with pytest.raises(StudyError, match=words):
        check_launcher(launcher, gpus)


def test_check_launcher_beyond_the_machine(monkeypatch):
    import os
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    with pytest.raises(StudyError, match='no CUDA device and 2 CPU'):
        check_launcher('pytorch', 3)
    check_launcher('pytorch', 2)  # as many processes as CPUs: accepted


@pytest.mark.parametrize('configs, seeds, words', [
    ([], [0], 'no config given'),
    (['a.py'], [], 'no seed given'),
    (['a.py'], [0, 0], 'repeats a seed'),
    (['a.py'], [-1], 'non-negative'),
    (['x/a.py', 'y/a.py'], [0], 'two configs share a name'),
])
def test_study_plan_refusals(configs, seeds, words):
    with pytest.raises(StudyError, match=words):
        study_plan(configs, seeds)


def test_study_plan_is_seed_major():
    plan = study_plan(['a.py', 'b.py'], [1, 0], dict(x=1))
    assert [(p.config, p.seed) for p in plan] == [
        ('a.py', 1), ('b.py', 1), ('a.py', 0), ('b.py', 0)]
    assert all(p.options == dict(x=1) for p in plan)


def test_reevaluate_refusals(tmp_path):
    study = tmp_path / 'study'
    study.mkdir()
    cases = [
        ((str(study), str(tmp_path / 'out'), {}), 'no `cfg_options`'),
        ((str(study), str(study), dict(a=1)), 'must not be the study'),
        ((str(study), str(tmp_path / 'out'), dict(a=1)),
         'compare.json not found'),
    ]
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'compare.json').write_text('[1, 2')
    cases.append(((str(tmp_path / 'bad'), str(tmp_path / 'out'), dict(a=1)),
                  'is not a study report'))
    for args, words in cases:
        with pytest.raises(StudyError, match=words):
            reevaluate_study(*args)
    assert not (tmp_path / 'out').exists()

