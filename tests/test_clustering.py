"""The Hungarian algorithm against brute force over all matchings, and the clustering
scores (ACC, NMI) against brute force, hand-computed values and their invariances."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpyvae.inference.clustering import (cluster_accuracy, contingency_table,
                                           linear_sum_assignment,
                                           normalized_mutual_information)


def brute_force_minimum(cost):
    """The least total over every injective matching of the shorter side into the longer."""
    n_rows, n_cols = cost.shape
    if n_rows > n_cols:
        return brute_force_minimum(cost.T)
    permutations = np.array(list(itertools.permutations(range(n_cols), n_rows)))
    return cost[np.arange(n_rows)[None, :], permutations].sum(axis=1).min()


def assert_valid_matching(cost, rows, cols):
    k = min(cost.shape)
    assert rows.shape == cols.shape == (k,)
    assert np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)
    assert np.all(np.diff(rows) > 0), "rows must be distinct and ascending"
    assert len(set(cols.tolist())) == k, "a column is used twice"
    assert rows.min() >= 0 and rows.max() < cost.shape[0]
    assert cols.min() >= 0 and cols.max() < cost.shape[1]


costs = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda shape: st.one_of(
        # Few distinct integers: many ties and many optimal matchings.
        hnp.arrays(np.int64, shape, elements=st.integers(0, 3)),
        hnp.arrays(np.int64, shape, elements=st.integers(-1000, 1000)),
        hnp.arrays(np.float64, shape,
                   elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))))


@settings(max_examples=300, deadline=None)
@given(costs)
def test_linear_sum_assignment_matches_brute_force(cost):
    rows, cols = linear_sum_assignment(cost)
    assert_valid_matching(cost, rows, cols)
    total = cost[rows, cols].sum()
    assert total == pytest.approx(brute_force_minimum(cost), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("shape", [(7, 7), (4, 7), (7, 3), (1, 6), (6, 1), (5, 5)])
def test_linear_sum_assignment_random_shapes(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        for cost in (rng.standard_normal(shape), rng.integers(0, 2, shape)):
            rows, cols = linear_sum_assignment(cost)
            assert_valid_matching(cost, rows, cols)
            assert cost[rows, cols].sum() == pytest.approx(brute_force_minimum(cost))


def test_linear_sum_assignment_hand_example():
    # Every row's cheapest column is 0. Greedy, row by row: 0->0, 1->1, 2->2 costs
    # 1 + 7 + 2 = 10; the optimum 0->1, 1->0, 2->2 costs 2 + 1 + 2 = 5 (all 6 checked:
    # 10, 5, 18, 12, 18, 17).
    cost = np.array([[1.0, 2.0, 9.0],
                     [1.0, 7.0, 9.0],
                     [1.0, 8.0, 2.0]])
    rows, cols = linear_sum_assignment(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    # Rectangular: the two rows take the two cheapest compatible columns.
    rows, cols = linear_sum_assignment(np.array([[5, 1, 4, 0], [5, 0, 6, 7]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [3, 1]
    rows, cols = linear_sum_assignment(np.array([[5, 5], [1, 0], [4, 6], [0, 7]]))
    assert rows.tolist() == [1, 3] and cols.tolist() == [1, 0]


def test_linear_sum_assignment_larger_matrices_are_consistent():
    # Beyond brute force: the optimum is the same for the transpose, and adding a
    # constant to a row or column shifts every full matching's total by that constant.
    rng = np.random.default_rng(3)
    cost = rng.random((50, 50))
    rows, cols = linear_sum_assignment(cost)
    assert_valid_matching(cost, rows, cols)
    total = cost[rows, cols].sum()
    rows_t, cols_t = linear_sum_assignment(cost.T)
    assert cost.T[rows_t, cols_t].sum() == pytest.approx(total, rel=1e-12)
    a, b = rng.normal(size=(50, 1)), rng.normal(size=(1, 50))
    shifted = cost + a + b
    rows_s, cols_s = linear_sum_assignment(shifted)
    assert shifted[rows_s, cols_s].sum() == pytest.approx(total + a.sum() + b.sum(), rel=1e-12)
    # No single swap of two rows' columns improves an optimal matching.
    swapped = cost[rows[:, None], cols[None, :]]
    diagonal = np.diag(swapped)
    gain = diagonal[:, None] + diagonal[None, :] - swapped - swapped.T
    assert gain.max() <= 1e-12


@pytest.mark.parametrize("cost, words", [
    (np.zeros(3), "2-D"),
    (np.zeros((2, 2, 2)), "2-D"),
    (np.zeros((0, 3)), "empty"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([[1.0, np.inf]]), "infinite"),
    ([["a", "b"]], "numbers"),
])
def test_linear_sum_assignment_rejects_bad_input(cost, words):
    with pytest.raises(ValueError, match=words):
        linear_sum_assignment(cost)


def test_contingency_table_by_hand():
    table, label_values, cluster_values = contingency_table(
        [2, 2, 5, 5, 5, 2], ["b", "a", "a", "a", "c", "b"])
    assert label_values.tolist() == [2, 5]
    assert cluster_values.tolist() == ["a", "b", "c"]
    assert table.tolist() == [[1, 2, 0], [2, 0, 1]]
    with pytest.raises(ValueError, match="same length"):
        contingency_table([0, 1], [0])
    with pytest.raises(ValueError, match="1-D"):
        contingency_table([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        contingency_table([], [])


def test_cluster_accuracy_hand_example():
    # Table (labels x clusters):   c0 c1 c2
    #                      label 0  1  2  0
    #                      label 1  2  0  1
    #                      label 2  0  0  2
    # Best matching c1->0, c0->1, c2->2 gets 2 + 2 + 2 = 6 of 8 right.
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    clusters = [1, 1, 0, 0, 0, 2, 2, 2]
    accuracy, mapping = cluster_accuracy(labels, clusters)
    assert accuracy == 0.75
    assert mapping == {1: 0, 0: 1, 2: 2}


def test_cluster_accuracy_with_more_or_fewer_clusters_than_labels():
    # Three clusters, two labels: c2->1 (2 right), c0 or c1 -> 0 (1 right), 3 of 4;
    # the unmatched cluster's example counts as wrong and is not in the mapping.
    accuracy, mapping = cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 2])
    assert accuracy == 0.75
    assert len(mapping) == 2 and mapping[2] == 1 and set(mapping) <= {0, 1, 2}
    # One cluster, three labels: it takes the commonest label.
    accuracy, mapping = cluster_accuracy([0, 1, 2, 2], [7, 7, 7, 7])
    assert accuracy == 0.5 and mapping == {7: 2}


def brute_force_accuracy(labels, clusters):
    """max over one-to-one maps between clusters and labels of the matched fraction,
    every map tried (on a table of counts built here cell by cell)."""
    label_values, cluster_values = sorted(set(labels)), sorted(set(clusters))
    table = np.zeros((len(label_values), len(cluster_values)))
    for y, c in zip(labels, clusters):
        table[label_values.index(y), cluster_values.index(c)] += 1
    return -brute_force_minimum(-table) / len(labels)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_cluster_accuracy_matches_brute_force(n_labels, n_clusters, n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_labels, n)
    # Clusters that agree with the labels part of the time, so the optimum is not trivial.
    clusters = np.where(rng.random(n) < 0.5, labels % n_clusters, rng.integers(0, n_clusters, n))
    accuracy, mapping = cluster_accuracy(labels, clusters)
    assert accuracy == pytest.approx(brute_force_accuracy(labels.tolist(), clusters.tolist()),
                                     abs=1e-12)
    # The mapping is one-to-one and scores the accuracy it claims.
    assert len(set(mapping.values())) == len(mapping)
    predicted = [mapping.get(c, None) for c in clusters.tolist()]
    assert np.mean([p == y for p, y in zip(predicted, labels.tolist())]) == pytest.approx(accuracy)


def test_cluster_accuracy_is_invariant_to_relabeling_clusters():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, 500)
    clusters = np.where(rng.random(500) < 0.7, (labels + 2) % 6, rng.integers(0, 6, 500))
    accuracy, mapping = cluster_accuracy(labels, clusters)
    names = np.array(["u", "v", "w", "x", "y", "z"])[rng.permutation(6)]
    renamed_accuracy, renamed_mapping = cluster_accuracy(labels, names[clusters])
    assert renamed_accuracy == accuracy
    assert renamed_mapping == {str(names[c]): y for c, y in mapping.items()}
    assert accuracy > 0.7  # the +2 shift is undone by the matching


def test_nmi_by_hand():
    # labels  0 0 0 1 1 1,  clusters 0 0 1 1 2 2.  Cells (1/N counts): (0,0)=2, (0,1)=1,
    # (1,1)=1, (1,2)=2; p_label = 1/2 each, p_cluster = 1/3 each.
    # I = 2/6 log((2/6)/(1/2*1/3)) + 1/6 log((1/6)/(1/6)) * 2 + 2/6 log(2) = 2/3 log 2
    # H(Y) = log 2, H(C) = log 3,  NMI = (2/3 log 2) / ((log 2 + log 3) / 2)
    expected = (2 / 3 * math.log(2)) / ((math.log(2) + math.log(3)) / 2)
    value = normalized_mutual_information([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2])
    assert value == pytest.approx(expected, rel=1e-12)
    assert value == pytest.approx(0.515803, abs=1e-6)


def test_nmi_is_one_for_a_relabeling_and_symmetric():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 8, 1000)
    permutation = rng.permutation(8) + 100
    assert normalized_mutual_information(labels, permutation[labels]) == pytest.approx(1.0)
    clusters = np.where(rng.random(1000) < 0.6, labels, rng.integers(0, 5, 1000))
    forward = normalized_mutual_information(labels, clusters)
    assert forward == pytest.approx(normalized_mutual_information(clusters, labels), rel=1e-12)
    assert 0.0 < forward < 1.0


def test_nmi_matches_the_entropy_formulas_cell_by_cell():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 200)
    clusters = rng.integers(0, 3, 200) + labels % 2
    n = len(labels)
    joint = {}
    for y, c in zip(labels.tolist(), clusters.tolist()):
        joint[y, c] = joint.get((y, c), 0) + 1
    p_y = {y: np.sum(labels == y) / n for y in set(labels.tolist())}
    p_c = {c: np.sum(clusters == c) / n for c in set(clusters.tolist())}
    mutual = sum(k / n * math.log(k / n / (p_y[y] * p_c[c])) for (y, c), k in joint.items())
    h_y = -sum(p * math.log(p) for p in p_y.values())
    h_c = -sum(p * math.log(p) for p in p_c.values())
    expected = mutual / ((h_y + h_c) / 2)
    assert normalized_mutual_information(labels, clusters) == pytest.approx(expected, rel=1e-12)


def test_nmi_near_zero_for_independent_labelings():
    rng = np.random.default_rng(7)
    labels, clusters = rng.integers(0, 10, 100_000), rng.integers(0, 10, 100_000)
    # The plug-in estimate's bias is about (10-1)^2 / (2N) nats against H ~ log 10.
    assert 0.0 <= normalized_mutual_information(labels, clusters) < 1e-3


def test_nmi_limit_cases():
    assert normalized_mutual_information([3, 3, 3], [1, 1, 1]) == 1.0
    assert normalized_mutual_information([3, 3, 3], [0, 1, 2]) == 0.0
    assert normalized_mutual_information([0, 1, 2], [5, 5, 5]) == 0.0
    # Each example its own cluster and its own label: a relabeling.
    assert normalized_mutual_information([0, 1, 2], [2, 0, 1]) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_nmi_is_in_unit_interval(pairs):
    labels, clusters = zip(*pairs)
    value = normalized_mutual_information(labels, clusters)
    assert 0.0 <= value <= 1.0
