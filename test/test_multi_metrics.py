"""Multi-person metrics on hand-built cases: detection, accuracy and identity each react to their own
failure and to nothing else."""
import numpy as np
import pytest

from dense_warper_ros.eval.multi_metrics import (cost_matrix, evaluate_multi, gated_assignment,
                                                 markdown_table)

T = 10


@pytest.fixture(scope="module")
def truth():
    """(2, T, 17, 3): two people 2 m apart, bones of about 0.3-0.5 m, moving slowly."""
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (17, 3))
    walk = np.linspace(0, 0.5, T)[:, None, None] * np.array([1.0, 0, 0])
    return np.stack([pose + walk, pose + walk + np.array([0, 2.0, 0])])


def perfect(truth, ids=(1, 2)):
    return [[(ids[p], truth[p, t]) for p in range(len(truth))] for t in range(T)]


def test_perfect_predictions(truth):
    m = evaluate_multi(truth, perfect(truth))
    assert m.recall == {50.0: 1.0, 100.0: 1.0} and m.precision == {50.0: 1.0, 100.0: 1.0}
    assert m.id_switches == 0 and m.fragments == 0 and m.fragmented_people == 0
    assert m.mpjpe_mm == pytest.approx(0) and m.mpjpe_root_mm == pytest.approx(0)
    assert m.pcp == 1.0 and m.person_pcp == (1.0, 1.0)
    assert (m.num_instants, m.num_truth, m.num_predictions, m.num_matched) == (T, 2 * T, 2 * T, 2 * T)


def test_order_of_predictions_does_not_matter(truth):
    preds = [list(reversed(p)) for p in perfect(truth)]
    m = evaluate_multi(truth, preds)
    assert m.recall[50.0] == 1.0 and m.id_switches == 0


def test_swapped_ids_mid_clip_are_two_switches(truth):
    preds = [[(1 if (p == 0) == (t < 5) else 2, truth[p, t]) for p in range(2)] for t in range(T)]
    m = evaluate_multi(truth, preds)
    assert m.id_switches == 2 and m.fragments == 2 and m.fragmented_people == 2
    assert m.recall[50.0] == 1.0 and m.precision[50.0] == 1.0 and m.pcp == 1.0


def test_a_switch_and_back_counts_twice_but_one_fragment(truth):
    preds = perfect(truth)
    preds[4] = [(9, truth[0, 4]), (2, truth[1, 4])]
    m = evaluate_multi(truth, preds)
    assert m.id_switches == 2 and m.fragments == 1 and m.fragmented_people == 1


def test_80_mm_off_counts_at_100_but_not_50(truth):
    off = np.array([0.08, 0.0, 0.0])
    preds = [[(1, truth[0, t] + off), (2, truth[1, t])] for t in range(T)]
    m = evaluate_multi(truth, preds)
    assert m.recall[50.0] == 0.5 and m.precision[50.0] == 0.5
    assert m.recall[100.0] == 1.0 and m.precision[100.0] == 1.0
    assert m.person_mpjpe_mm == pytest.approx((80.0, 0.0))
    assert m.person_mpjpe_root_mm == pytest.approx((0.0, 0.0), abs=1e-9)     # a pure translation
    assert m.mpjpe_mm == pytest.approx(40.0)


def test_an_extra_false_track_lowers_precision_only(truth):
    preds = [p + [(7, truth[0, t] + np.array([0, -3.0, 0]))] for t, p in enumerate(perfect(truth))]
    m = evaluate_multi(truth, preds)
    assert m.recall[100.0] == 1.0 and m.precision[100.0] == pytest.approx(2 / 3)
    assert m.id_switches == 0 and m.fragments == 0 and m.mpjpe_mm == pytest.approx(0)


def test_fragmented_person(truth):
    preds = [[(1 if t < 5 else 3, truth[0, t]), (2, truth[1, t])] for t in range(T)]
    m = evaluate_multi(truth, preds)
    assert m.fragments == 1 and m.fragmented_people == 1 and m.id_switches == 1


def test_missing_person_lowers_recall_and_pcp(truth):
    preds = [[(1, truth[0, t])] + ([(2, truth[1, t])] if t % 2 else []) for t in range(T)]
    m = evaluate_multi(truth, preds)
    assert m.recall[50.0] == pytest.approx(0.75) and m.precision[50.0] == 1.0
    assert m.person_pcp == pytest.approx((1.0, 0.5)) and m.pcp == pytest.approx(0.75)
    assert m.id_switches == 0                      # gaps are not switches


def test_absent_truth_is_not_counted(truth):
    tr = truth.copy()
    tr[1, :3] = np.nan                             # person 1 enters at instant 3
    preds = [[(1, tr[0, t])] + ([(2, tr[1, t])] if t >= 3 else []) for t in range(T)]
    m = evaluate_multi(tr, preds)
    assert m.num_truth == 2 * T - 3 and m.recall[50.0] == 1.0 and m.person_pcp == (1.0, 1.0)


def test_nan_joints_are_excluded_from_the_cost(truth):
    pose = truth[0, 0].copy()
    pose[[3, 6]] = np.nan
    pose[0, 0] += 0.03                             # 30 mm on one joint: mean over 15 joints = 2 mm
    cost = cost_matrix(pose[None], truth[:, 0])
    assert cost[0, 0] == pytest.approx(30.0 / 15) and cost[0, 1] > 1000
    assert cost_matrix(np.full((1, 17, 3), np.nan), truth[:, 0])[0, 0] == np.inf


def test_hungarian_beats_greedy_under_the_gate():
    truth = np.zeros((2, 17, 3))
    truth[1, :, 0] = 0.050                          # B 50 mm from A
    p0 = np.zeros((17, 3)) + np.array([0.010, 0, 0])         # A: 10 mm, B: 40 mm
    p1 = np.zeros((17, 3)) + np.array([-0.007, np.sqrt(0.02 ** 2 - 0.007 ** 2), 0])   # A: 20, B: 60
    cost = cost_matrix(np.stack([p0, p1]), truth)
    np.testing.assert_allclose(cost, [[10, 40], [20, 60]], atol=1e-6)
    assert sorted(gated_assignment(cost, 50.0)) == [(0, 1), (1, 0)]          # greedy would find one
    assert gated_assignment(cost, 5.0) == []


def test_the_gate_is_inside_the_assignment_not_after_it():
    truth = np.zeros((2, 17, 3))
    truth[1, :, 0] = 0.050
    p0 = np.zeros((17, 3))                                    # A: 0, B: 50 mm
    p1 = np.zeros((17, 3)) + np.array([0.014, 0.048, 0])     # A: 50, B: 60 mm
    cost = cost_matrix(np.stack([p0, p1]), truth)
    np.testing.assert_allclose(cost, [[0, 50], [50, 60]], atol=1e-6)
    # the unconstrained optimum (0 + 60) then thresholded at 55 mm would keep one pair
    assert sorted(gated_assignment(cost, 55.0)) == [(0, 1), (1, 0)]
    m = evaluate_multi(truth[:, None], [[(1, p0), (2, p1)]], thresholds_mm=(55.0,))
    assert m.recall == {55.0: 1.0}


def test_pcp_uses_the_mean_of_the_endpoint_errors():
    truth = np.zeros((1, 1, 17, 3))
    truth[0, 0, :, 2] = np.arange(17) * 1.0         # joint j at height j m: bone (1, 0) is 1 m long
    pred = truth[0, 0].copy()
    pred[0] += np.array([0.9, 0, 0])                 # pelvis 0.9 m off: mean error 0.45 <= 0.5 x 1 m
    assert evaluate_multi(truth, [[(1, pred)]], match_mm=1e6).pcp == 1.0
    pred[0] = truth[0, 0, 0] + np.array([1.1, 0, 0])  # 0.55 > 0.5 on (1, 0); (4, 0), (7, 0) are long
    m = evaluate_multi(truth, [[(1, pred)]], match_mm=1e6)
    assert m.pcp == pytest.approx(15 / 16)
    pred[1] = truth[0, 0, 1] + np.array([1.0, 0, 0])  # a strict both-endpoints rule would fail (2, 1) too:
    assert evaluate_multi(truth, [[(1, pred)]], match_mm=1e6).pcp == pytest.approx(15 / 16)   # mean 0.5


def test_bad_input_raises(truth):
    with pytest.raises(ValueError, match="instants"):
        evaluate_multi(truth, perfect(truth)[:-1])
    with pytest.raises(ValueError, match="17, 3"):
        evaluate_multi(truth[:, :1], [[(1, np.zeros((16, 3)))]])


def test_markdown_table(truth):
    good = evaluate_multi(truth, perfect(truth))
    bad = evaluate_multi(truth, [[(1, truth[0, t])] for t in range(T)])
    table = markdown_table([("crossing", "tracker", good), ("crossing", "none", bad)])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| scene | method | R @50mm | P @50mm | R @100mm")
    assert "| crossing | tracker | 1.000 | 1.000 | 1.000 | 1.000 | 0.0 |" in lines[2]
    assert "| crossing | none | 0.500 | 1.000 |" in lines[3] and lines[3].endswith("| 10 / 20 |")
    assert markdown_table([]) == ""
