"""The paired statistics of the studies: ``report.paired_difference`` (the
per-seed difference of two configs with its Student-t interval, behind
``compare.json``'s tables) and ``backends.drop_differences`` (the same over
the deployment drops), checked against ``scipy.stats.ttest_rel`` and a hand
computation."""
import math

import pytest
from scipy import stats

from acnet_backbone.study.backends import LABELS, drop_differences
from acnet_backbone.study.report import paired_difference

# t quantile for a two-sided 95% interval with 3 degrees of freedom (tables)
T975_DF3 = 3.1824463052837078

# the seeds differ a lot (baseline 0.30 ... 0.62), the per-seed differences
# little: a paired interval is narrow, an unpaired one wide, so pairing by
# anything but the seed shows. Seeds 5 and 7 have no partner; the dicts are
# in different orders
BASELINE = {2: 0.45, 0: 0.30, 7: 0.90, 1: 0.62, 3: 0.51}
VALUES = {3: 0.535, 1: 0.641, 5: 0.20, 0: 0.318, 2: 0.466}
SEEDS = [0, 1, 2, 3]
DIFFS = [0.018, 0.021, 0.016, 0.025]


def _by_hand(diffs):
    mean = sum(diffs) / len(diffs)
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = T975_DF3 * std / math.sqrt(len(diffs))
    return mean, std, [mean - half, mean + half]


def test_paired_difference_is_a_paired_t_interval():
    d = paired_difference(VALUES, BASELINE)
    assert d['seeds'] == SEEDS and d['n'] == 4
    assert d['per_seed'] == pytest.approx(DIFFS, abs=1e-12)
    mean, std, ci = _by_hand(DIFFS)
    assert d['mean'] == pytest.approx(mean, rel=1e-12)
    assert d['std'] == pytest.approx(std, rel=1e-12)
    assert d['ci95'] == pytest.approx(ci, rel=1e-9)
    # scipy's paired t-test on the same pairs: its statistic and interval
    a, b = [VALUES[s] for s in SEEDS], [BASELINE[s] for s in SEEDS]
    rel = stats.ttest_rel(a, b)
    assert d['mean'] / (d['std'] / math.sqrt(d['n'])) == pytest.approx(
        rel.statistic, rel=1e-9)
    if hasattr(rel, 'confidence_interval'):  # scipy >= 1.10
        low, high = rel.confidence_interval(0.95)
        assert d['ci95'] == pytest.approx([low, high], rel=1e-9)
    # pairing matters with these numbers: the paired interval excludes 0
    # (p = 0.002), an unpaired (Welch) one would be 37 times as wide and
    # hold 0 (p = 0.84)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert d['ci95'][0] > 0 and rel.pvalue < 0.01 and welch.pvalue > 0.5


def test_paired_difference_edges():
    # one pair: a mean, no spread, no interval
    one = paired_difference({4: 0.5, 1: 0.7}, {4: 0.45, 2: 0.1})
    assert one['seeds'] == [4] and one['n'] == 1
    assert one['per_seed'] == pytest.approx([0.05])
    assert one['mean'] == pytest.approx(0.05)
    assert one['std'] is None and one['ci95'] is None
    # no common seed
    assert paired_difference({0: 0.5}, {1: 0.5}) is None
    assert paired_difference({}, BASELINE) is None
    # equal differences: zero width, centred on them
    same = paired_difference({0: 0.3, 1: 0.5}, {0: 0.2, 1: 0.4})
    assert same['ci95'] == pytest.approx([0.1, 0.1])


def _rows():
    """Study rows as ``study_row`` writes them: per run ``name``, ``seed``
    and ``<runtime>_drop`` for the runtimes it ran."""
    rows = []
    for s in SEEDS:  # the baseline (first name)
        row = dict(name='plain', seed=s, onnx_drop=0.0,
                   onnx_int8_drop=BASELINE[s] / 10)
        if s != 3:
            row['openvino_int8_drop'] = BASELINE[s] / 20
        rows.append(row)
    rows.append(dict(name='plain', seed=None, onnx_int8_drop=5.0))  # no seed
    for s in (3, 1, 0, 2):  # another order than the baseline's
        row = dict(name='acb', seed=s, onnx_drop=0.0,
                   onnx_int8_drop=VALUES[s] / 10)
        if s in (0, 1):
            row['openvino_int8_drop'] = VALUES[s] / 20
        rows.append(row)
    rows.append(dict(name='online', seed=1, onnx_int8_drop=0.07))
    return rows


def test_drop_differences_pairs_each_config_with_the_first_by_seed():
    out = drop_differences(_rows())
    got = {(d['name'], d['runtime']): d for d in out}
    # every later config against the first, per runtime both have; in
    # runtime order; no torch (the drops are against torch)
    assert [(d['name'], d['runtime']) for d in out] == [
        ('acb', 'onnx'), ('acb', 'onnx_int8'), ('acb', 'openvino_int8'),
        ('online', 'onnx_int8')]
    for d in out:
        assert d['baseline'] == 'plain' and d['label'] == LABELS[d['runtime']]
        assert 'std' not in d
    q = got[('acb', 'onnx_int8')]
    assert q['seeds'] == SEEDS and q['n'] == 4
    diffs = [x / 10 for x in DIFFS]
    assert q['per_seed'] == pytest.approx(diffs, abs=1e-12)
    mean, _, ci = _by_hand(diffs)
    assert q['mean'] == pytest.approx(mean, rel=1e-9)
    assert q['ci95'] == pytest.approx(ci, rel=1e-9)
    rel = stats.ttest_rel([VALUES[s] / 10 for s in SEEDS],
                          [BASELINE[s] / 10 for s in SEEDS])
    if hasattr(rel, 'confidence_interval'):
        assert q['ci95'] == pytest.approx(list(rel.confidence_interval()),
                                          rel=1e-9)
    # only the seeds both ran (seed 3 has no OpenVINO INT8 in the baseline,
    # 2 none in acb)
    ov = got[('acb', 'openvino_int8')]
    assert ov['seeds'] == [0, 1]
    assert ov['per_seed'] == pytest.approx([DIFFS[0] / 20, DIFFS[1] / 20])
    zero = got[('acb', 'onnx')]
    assert zero['per_seed'] == [0.0] * 4 and zero['ci95'] == [0.0, 0.0]
    single = got[('online', 'onnx_int8')]
    assert single['seeds'] == [1] and single['ci95'] is None
    assert single['mean'] == pytest.approx(0.07 - BASELINE[1] / 10)
    # one config: nothing to compare
    assert drop_differences([r for r in _rows() if r['name'] == 'plain']) \
        == []
