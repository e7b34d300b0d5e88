"""Scoring a clustering against class labels: the assignment problem, ACC and NMI.

Derived in tutorials/11_vade.ipynb.

Assignment. Given costs c_ij (n rows <= m columns), find the injective sigma minimizing
sum_i c_{i sigma(i)}. Its LP dual is

    max sum_i u_i + sum_j v_j   subject to   u_i + v_j <= c_ij,

and an assignment is optimal exactly when every matched pair is tight (u_i + v_j = c_ij).
The shortest-augmenting-path method (Kuhn-Munkres, in the Jonker-Volgenant form) adds the
rows one at a time: a Dijkstra search over the reduced costs c_ij - u_i - v_j >= 0 finds
the cheapest alternating path from the new row to a free column; shifting the potentials
by the search distances keeps them feasible and makes the path tight, and flipping the
path grows the matching by one. n rows x O(m) steps of O(m) work: O(n^2 m).

Scores, with p_ij = n_ij / N from the contingency table of labels y and clusters c:

    ACC = max over one-to-one maps g: (1/N) sum_n 1[y_n = g(c_n)]        (DEC, VaDE)
    H(Y) = -sum_i p_i log p_i,   H(C) = -sum_j p_j log p_j
    I(Y;C) = sum_ij p_ij log(p_ij / (p_i p_j))
    NMI = I(Y;C) / ((H(Y) + H(C)) / 2)
"""
import numpy


def linear_sum_assignment(cost):
    """The minimum-cost matching of rows to columns: (row_indices, col_indices).

        minimize sum_k cost[row_k, col_k] over min(n_rows, n_cols) pairs, each row and
        each column used at most once

    cost: (n_rows, n_cols) finite numbers, rectangular allowed. Returns two int arrays of
    length min(n_rows, n_cols), rows ascending (as scipy.optimize.linear_sum_assignment).
    """
    cost = _check_cost(cost)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        # The search adds rows into free columns, so it needs rows <= columns.
        cost = cost.T
    match = _shortest_augmenting_paths(cost)
    cols = numpy.flatnonzero(match[1:]).astype(numpy.intp)
    rows = (match[1:][cols] - 1).astype(numpy.intp)
    if transposed:
        rows, cols = cols, rows
    order = numpy.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _check_cost(cost):
    try:
        cost = numpy.asarray(cost, dtype=numpy.float64)
    except (TypeError, ValueError):
        raise ValueError("linear_sum_assignment: the cost matrix must hold numbers; "
                         "pass a 2-D numeric array.") from None
    if cost.ndim != 2:
        raise ValueError(f"linear_sum_assignment: the cost matrix must be 2-D, got shape "
                         f"{cost.shape}; pass an (n_rows, n_cols) array.")
    if cost.size == 0:
        raise ValueError(f"linear_sum_assignment: the cost matrix is empty (shape "
                         f"{cost.shape}); pass at least one row and one column.")
    if not numpy.isfinite(cost).all():
        raise ValueError("linear_sum_assignment: the cost matrix holds NaN or infinite "
                         "entries; replace forbidden pairs by a large finite cost.")
    return cost


def _shortest_augmenting_paths(cost):
    """match[j] = 1 + the row matched to column j - 1 (0: free), for n_rows <= n_cols.

    Index 0 of the column arrays is a virtual column holding the row being inserted, so
    each search starts from it and ends at a real free column.
    """
    n, m = cost.shape
    # Costs shifted by a constant change every full matching's total by the same amount;
    # starting at zero keeps the potentials small.
    padded = numpy.zeros((n + 1, m + 1))
    padded[1:, 1:] = cost - cost.min()
    u = numpy.zeros(n + 1)
    v = numpy.zeros(m + 1)
    match = numpy.zeros(m + 1, dtype=numpy.intp)
    way = numpy.zeros(m + 1, dtype=numpy.intp)
    for row in range(1, n + 1):
        match[0] = row
        end = _search(padded, u, v, match, way)
        # Flip the alternating path back to the virtual column: each column on it takes
        # the row of its predecessor.
        while end:
            previous = way[end]
            match[end] = match[previous]
            end = previous
    return match


def _search(padded, u, v, match, way):
    """Dijkstra over reduced costs from the virtual column; updates u, v, way in place
    and returns the free column that ends the shortest augmenting path."""
    m = padded.shape[1] - 1
    distance = numpy.full(m + 1, numpy.inf)  # to each column, through the tree so far
    used = numpy.zeros(m + 1, dtype=bool)    # columns in the tree
    column = 0
    while True:
        used[column] = True
        row = match[column]
        reduced = padded[row] - u[row] - v
        closer = ~used & (reduced < distance)
        distance[closer] = reduced[closer]
        way[closer] = column
        candidates = numpy.where(used, numpy.inf, distance)
        nearest = int(numpy.argmin(candidates))
        delta = candidates[nearest]
        # Shift potentials so tree edges stay tight and reduced costs stay >= 0.
        u[match[used]] += delta
        v[used] -= delta
        distance[~used] -= delta
        column = nearest
        if match[column] == 0:
            return column


def contingency_table(labels, clusters):
    """Counts n_ij = #{n: labels_n = a_i, clusters_n = b_j}: (table, label_values,
    cluster_values), table of shape (n distinct labels, n distinct clusters), int64,
    the values sorted as numpy.unique sorts them.
    """
    labels, clusters = _check_labelings(labels, clusters)
    label_values, label_index = numpy.unique(labels, return_inverse=True)
    cluster_values, cluster_index = numpy.unique(clusters, return_inverse=True)
    shape = (len(label_values), len(cluster_values))
    flat = label_index.reshape(-1) * shape[1] + cluster_index.reshape(-1)
    table = numpy.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape)
    return table.astype(numpy.int64), label_values, cluster_values


def _check_labelings(labels, clusters):
    labels, clusters = numpy.asarray(labels), numpy.asarray(clusters)
    if labels.ndim != 1 or clusters.ndim != 1:
        raise ValueError(f"labels and clusters must be 1-D, got shapes {labels.shape} and "
                         f"{clusters.shape}; pass one value per example.")
    if len(labels) != len(clusters):
        raise ValueError(f"labels and clusters must have the same length, got "
                         f"{len(labels)} and {len(clusters)}; pass one value per example.")
    if len(labels) == 0:
        raise ValueError("labels and clusters are empty; pass at least one example.")
    return labels, clusters


def cluster_accuracy(labels, clusters):
    """ACC = max over one-to-one maps g of (1/N) sum_n 1[labels_n = g(clusters_n)]:
    (accuracy, mapping cluster -> label).

    The map is the Hungarian matching on the negated contingency table. With more
    clusters than labels the unmatched clusters are absent from the mapping and their
    examples count as wrong; with fewer, some labels are never predicted.
    """
    table, label_values, cluster_values = contingency_table(labels, clusters)
    label_rows, cluster_cols = linear_sum_assignment(-table)
    accuracy = float(table[label_rows, cluster_cols].sum()) / float(table.sum())
    label_list, cluster_list = label_values.tolist(), cluster_values.tolist()
    mapping = {cluster_list[j]: label_list[i] for i, j in zip(label_rows, cluster_cols)}
    return accuracy, mapping


def normalized_mutual_information(labels, clusters):
    """NMI = I(Y;C) / ((H(Y) + H(C)) / 2), in [0, 1], symmetric in its arguments.

    The arithmetic-mean normalization, scikit-learn's default (average_method=
    "arithmetic"). Both labelings constant is a perfect match: 1.0; exactly one constant
    gives I = 0: 0.0.
    """
    table, _, _ = contingency_table(labels, clusters)
    if table.shape == (1, 1):
        return 1.0
    total = table.sum()
    row_sums, col_sums = table.sum(axis=1), table.sum(axis=0)
    rows, cols = numpy.nonzero(table)
    counts = table[rows, cols].astype(numpy.float64)
    # log(p_ij / (p_i p_j)) = log n_ij + log N - log n_i - log n_j, on nonzero cells only.
    log_ratio = (numpy.log(counts) + numpy.log(total)
                 - numpy.log(row_sums[rows]) - numpy.log(col_sums[cols]))
    mutual_information = max(float((counts / total * log_ratio).sum()), 0.0)
    if mutual_information == 0.0:
        return 0.0
    mean_entropy = 0.5 * (_entropy(row_sums) + _entropy(col_sums))
    return min(mutual_information / mean_entropy, 1.0)


def _entropy(counts):
    """H = -sum_i p_i log p_i in nats, p_i = counts_i / sum(counts) (all counts > 0)."""
    p = counts / counts.sum()
    return float(-(p * numpy.log(p)).sum())
