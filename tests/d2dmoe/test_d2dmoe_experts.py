"""Balanced k-means split of neurons into experts (nblib.d2dmoe.experts)."""
import numpy as np
import pytest
import torch

from nblib import d2dmoe as D


def test_balanced_kmeans_gives_equal_clusters_and_recovers_clear_groups():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 5
    truth = np.repeat(np.arange(4), 6)
    rows = centers[truth] + rng.normal(size=(24, 8)) * 0.1
    labels = D.balanced_kmeans(rows, 4, seed=0)
    assert np.bincount(labels).tolist() == [6, 6, 6, 6]
    # every true group lands in one cluster
    assert all(len(set(labels[truth == g])) == 1 for g in range(4))


def test_balancing_step_moves_neurons_out_of_an_oversized_cluster():
    rng = np.random.default_rng(1)
    rows = np.concatenate([rng.normal(size=(12, 3)) * 0.05, rng.normal(size=(4, 3)) * 0.05 + 10])
    labels = D.balanced_kmeans(rows, 2, seed=0)  # plain k-means would give a 12/4 split
    assert np.bincount(labels).tolist() == [8, 8]


def test_split_is_a_partition_with_expert_size_d_ff_over_n(make_bert):
    site = D.ffn_sites(make_bert())[0]
    ex = D.split_experts(D.ffn_weights(site), 8)
    assert ex.n_experts == 8 and ex.size == 8 and ex.d == 32
    assert sorted(ex.neurons.reshape(-1).tolist()) == list(range(64))
    w = D.ffn_weights(site)
    for e in range(8):
        torch.testing.assert_close(ex.w_in[e], w.w_in[ex.neurons[e]])
        torch.testing.assert_close(ex.w_out[e], w.w_out[:, ex.neurons[e]].T)


def test_expert_count_that_does_not_divide_the_width_is_one_clear_error(make_bert):
    with pytest.raises(ValueError, match="do not divide the FFN width 64"):
        D.check_expert_count(64, 6)
    with pytest.raises(ValueError, match="do not divide the FFN width 64"):
        D.convert_model(make_bert(), 6)
