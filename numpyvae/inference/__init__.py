"""Inference on trained models: clustering, Gaussian mixtures fitted by EM, per-example
refinement of q.

    numpyvae.inference.clustering  -> linear_sum_assignment (the Hungarian algorithm),
                                      contingency_table, cluster_accuracy (ACC),
                                      normalized_mutual_information (NMI)
    numpyvae.inference.gmm         -> kmeans (k-means++ and Lloyd), DiagonalGMM,
                                      fit_diagonal_gmm (EM)
    numpyvae.inference.refinement  -> refine (Adam on q's local parameters), encoder_start,
                                      prior_start (SVI from scratch), elbo_estimate,
                                      inference_gaps (approximation and amortization gaps)

Everything is written by hand in NumPy: clustering and mixtures float64 inside (derived in
tutorials/11_vade.ipynb); refinement in the model's dtype, by the model's own gradients.
"""
from . import clustering, gmm, refinement
