"""The evaluation protocol against values computed by hand."""
import math

import numpy as np
import pytest

from textdepth_ros.metrics import METRIC_NAMES, MetricAverager, compute_errors, evaluate_depth


def test_each_metric_by_hand():
    # gt = [1, 2], pred = [1.5, 2]: one pixel off by 50 %, one exact.
    m = compute_errors(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    ln15 = math.log(1.5)
    assert m["abs_rel"] == pytest.approx((0.5 / 1 + 0) / 2)  # 0.25
    assert m["sq_rel"] == pytest.approx((0.25 / 1 + 0) / 2)  # 0.125
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0) / 2))
    assert m["rmse_log"] == pytest.approx(math.sqrt(ln15 ** 2 / 2))
    assert m["log10"] == pytest.approx(math.log10(1.5) / 2)
    # silog: e = [ln 1.5, 0]; mean(e^2) - mean(e)^2 = ln1.5^2/2 - ln1.5^2/4 = ln1.5^2/4
    assert m["silog"] == pytest.approx(math.sqrt(ln15 ** 2 / 4) * 100)  # natural log, x100
    # thresh = max(gt/pred, pred/gt) = [1.5, 1]: 1.5 < 1.25^2 = 1.5625 but not < 1.25
    assert (m["d1"], m["d2"], m["d3"]) == (0.5, 1.0, 1.0)


def test_silog_is_scale_invariant_and_uses_natural_log():
    gt = np.array([1.0, 2.0, 4.0])
    assert compute_errors(gt, gt * 3.0)["silog"] == pytest.approx(0.0, abs=1e-6)
    pred = np.array([1.0, 2.0, 8.0])  # e = [0, 0, ln 2]
    e = np.array([0.0, 0.0, math.log(2.0)])
    assert compute_errors(gt, pred)["silog"] == pytest.approx(math.sqrt(np.mean(e ** 2) - np.mean(e) ** 2) * 100)


def test_eigen_crop_rows_45_471_cols_41_601():
    gt = np.full((480, 640), 2.0)
    pred = np.full((480, 640), 4.0)  # wrong everywhere ...
    pred[45:471, 41:601] = 2.0  # ... except inside the crop
    m = evaluate_depth(pred, gt, crop="eigen")
    assert m["abs_rel"] == 0.0 and m["d1"] == 1.0
    # one wrong pixel on each inclusive crop edge counts, the next row/col outside does not
    for r, c, counted in ((45, 41, True), (470, 600, True), (44, 300, False), (471, 300, False),
                          (200, 40, False), (200, 601, False)):
        p = pred.copy()
        p[r, c] = 4.0
        assert (evaluate_depth(p, gt, crop="eigen")["abs_rel"] > 0) == counted, (r, c)
    assert evaluate_depth(pred, gt, crop=None)["abs_rel"] > 0  # no crop: the border counts


def test_crop_only_applies_to_480x640():
    gt = np.full((120, 160), 2.0)
    pred = np.full((120, 160), 2.0)
    pred[0, 0] = 4.0  # outside where a crop would be
    assert evaluate_depth(pred, gt, crop="eigen")["abs_rel"] == pytest.approx(1.0 / (120 * 160))


def test_prediction_clamps():
    gt = np.array([[5.0, 5.0, 5.0, 5.0]])
    pred = np.array([[np.inf, np.nan, 20.0, -1.0]])
    m = evaluate_depth(pred, gt, crop=None)
    # clamped pred = [10, 1e-3, 10, 1e-3]
    clamped = np.array([10.0, 1e-3, 10.0, 1e-3])
    assert m["abs_rel"] == pytest.approx(np.mean(np.abs(5.0 - clamped) / 5.0))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((5.0 - clamped) ** 2)))
    assert np.isinf(pred[0, 0]) and np.isnan(pred[0, 1])  # the caller's array is untouched


def test_invalid_gt_pixels_are_ignored():
    # 0, the bounds themselves (strict inequalities), above max and NaN are invalid
    gt = np.array([[0.0, 1e-3, 10.0, 12.0, np.nan, 2.0]])
    pred = np.array([[9.0, 9.0, 9.0, 9.0, 9.0, 3.0]])
    m = evaluate_depth(pred, gt, crop=None)
    assert m["abs_rel"] == pytest.approx(0.5)  # only the last pixel
    assert evaluate_depth(pred, np.zeros_like(gt), crop=None) is None


def test_average_per_image_then_over_images():
    avg = MetricAverager()
    # image A: one pixel, abs_rel 0.5; image B: three exact pixels, abs_rel 0
    avg.add(evaluate_depth(np.array([[3.0]]), np.array([[2.0]]), crop=None))
    avg.add(evaluate_depth(np.array([[1.0, 1.0, 1.0]]), np.array([[1.0, 1.0, 1.0]]), crop=None))
    avg.add(None)  # an image without valid GT is not counted
    mean = avg.mean()
    assert mean["abs_rel"] == pytest.approx(0.25)  # not the pooled 0.125
    assert mean["count"] == 2
    assert set(mean) == set(METRIC_NAMES) | {"count"}
