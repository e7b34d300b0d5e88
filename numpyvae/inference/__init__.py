"""Inference on trained models: clustering, Gaussian mixtures fitted by EM.

    numpyvae.inference.clustering  -> linear_sum_assignment (the Hungarian algorithm),
                                      contingency_table, cluster_accuracy (ACC),
                                      normalized_mutual_information (NMI)
    numpyvae.inference.gmm         -> kmeans (k-means++ and Lloyd), DiagonalGMM,
                                      fit_diagonal_gmm (EM)

Everything is written by hand in NumPy, float64 inside; derived in tutorials/11_vade.ipynb.
"""
from . import clustering, gmm
