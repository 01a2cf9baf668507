"""Vector quantization: nearest codes, straight-through gradients, the EMA codebook and
codebook health."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from gen_jax import parallel
from gen_jax.objectives import vector_quantization as vq


def test_quantize_picks_the_nearest_code():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(4, 5, 6, 3)).astype(np.float32)
  codebook = rng.normal(size=(11, 3)).astype(np.float32)
  quantized, codes = vq.quantize(jnp.asarray(z), jnp.asarray(codebook))
  distances = np.linalg.norm(z[..., None, :] - codebook, axis=-1)  # [4, 5, 6, 11]
  np.testing.assert_array_equal(codes, distances.argmin(-1))
  np.testing.assert_array_equal(quantized, codebook[distances.argmin(-1)])
  near = codebook[[7, 2, 9]] + 1e-3  # a point next to a code is assigned that code
  np.testing.assert_array_equal(vq.nearest_code(jnp.asarray(near), jnp.asarray(codebook)),
                                [7, 2, 9])


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged():
  rng = np.random.default_rng(1)
  z = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  codebook = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  decoder = lambda e: jnp.sum(jnp.tanh(e @ weights) ** 2)  # any nonlinear decoder

  def through_quantizer(z, codebook):
    quantized, _ = vq.quantize(z, codebook)
    return decoder(vq.straight_through(z, quantized))

  quantized, _ = vq.quantize(z, codebook)
  decoder_input = vq.straight_through(z, quantized)
  np.testing.assert_allclose(decoder_input, quantized, atol=1e-6)  # forward: the codes
  value, (grad_z, grad_codebook) = jax.value_and_grad(through_quantizer, argnums=(0, 1))(
      z, codebook)
  np.testing.assert_allclose(value, decoder(quantized), rtol=1e-6)
  # backward: dL/dz is the decoder's gradient at its input, bit for bit
  np.testing.assert_array_equal(grad_z, jax.grad(decoder)(decoder_input))
  np.testing.assert_array_equal(grad_codebook, 0.0)  # no codebook gradient on this path


def test_codebook_and_commitment_losses_move_one_side_each():
  rng = np.random.default_rng(2)
  z = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  e = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  np.testing.assert_allclose(vq.codebook_loss(z, e), np.mean((z - e) ** 2), rtol=1e-6)
  np.testing.assert_allclose(vq.commitment_loss(z, e), np.mean((z - e) ** 2), rtol=1e-6)
  dz, de = jax.grad(vq.codebook_loss, argnums=(0, 1))(z, e)
  np.testing.assert_array_equal(dz, 0.0)
  np.testing.assert_allclose(de, 2 * (e - z) / z.size, rtol=1e-5)
  dz, de = jax.grad(vq.commitment_loss, argnums=(0, 1))(z, e)
  np.testing.assert_allclose(dz, 2 * (z - e) / z.size, rtol=1e-5)
  np.testing.assert_array_equal(de, 0.0)


def test_ema_update_matches_the_formula_on_a_toy():
  decay, epsilon = 0.9, 0.1
  cluster_size = np.array([2.0, 1.0, 0.5])  # N
  cluster_sum = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # m
  z = np.array([[1.0, 1.0], [3.0, -1.0], [0.0, 4.0], [2.0, 2.0]])
  codes = np.array([0, 0, 1, 0])  # code 2 unused this step
  codebook, new_size, new_sum = vq.ema_codebook_update(
      jnp.asarray(cluster_size), jnp.asarray(cluster_sum), jnp.asarray(z), jnp.asarray(codes),
      decay=decay, epsilon=epsilon)
  # By hand: n = (3, 1, 0); s_0 = (1+3+2, 1-1+2) = (6, 2), s_1 = (0, 4), s_2 = 0.
  expected_size = np.array([0.9 * 2 + 0.1 * 3, 0.9 * 1 + 0.1 * 1, 0.9 * 0.5])
  expected_sum = np.array([[0.9 + 0.6, 0.2], [0.0, 1.8 + 0.4], [0.9, 0.9]])
  total = expected_size.sum()
  smoothed = (expected_size + epsilon) / (total + 3 * epsilon) * total
  np.testing.assert_allclose(new_size, expected_size, rtol=1e-6)
  np.testing.assert_allclose(new_sum, expected_sum, rtol=1e-6)
  np.testing.assert_allclose(codebook, expected_sum / smoothed[:, None], rtol=1e-6)


def test_laplace_smoothing_keeps_the_total_and_every_count_positive():
  counts = jnp.array([5.0, 0.0, 3.0, 0.0])
  smoothed = vq.laplace_smoothed(counts, 1e-5)
  np.testing.assert_allclose(smoothed.sum(), 8.0, rtol=1e-6)
  assert np.all(smoothed > 0)
  np.testing.assert_allclose(smoothed[jnp.array([0, 2])], [5.0, 3.0], rtol=1e-4)


def test_ema_statistics_are_the_same_on_one_and_two_devices():
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  rng = np.random.default_rng(3)
  z = rng.normal(size=(8, 5, 5, 4)).astype(np.float32)  # a batch of 8 grids of 5x5 vectors
  codebook = rng.normal(size=(16, 4)).astype(np.float32)
  size, total = np.ones(16, np.float32), codebook.copy()

  def step(z):
    codes = vq.nearest_code(z, codebook)
    return vq.ema_codebook_update(size, total, z, codes, decay=0.8, epsilon=1e-5)

  outputs = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    mesh = parallel.create_mesh(devices)
    sharded = jax.device_put(z, NamedSharding(mesh, PartitionSpec("data")))
    outputs.append(jax.device_get(jax.jit(step, out_shardings=parallel.replicated(mesh))(sharded)))
  chex.assert_trees_all_close(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
  # ... and both are the statistics of the whole batch, not of one device's half.
  whole = jax.device_get(step(z))
  chex.assert_trees_all_close(outputs[1], whole, rtol=1e-6, atol=1e-6)


def test_dead_codes_restart_on_encoder_outputs_and_live_codes_stay():
  rng = np.random.default_rng(4)
  z = jnp.asarray(rng.normal(size=(2, 3, 3, 2)), jnp.float32)
  codebook = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
  size = jnp.array([5.0, 0.01, 3.0, 0.0, 2.0, 0.4])
  new_codebook, new_size, new_sum, dead = vq.restart_dead_codes(
      codebook, size, codebook * size[:, None], z, jax.random.key(0), threshold=0.5, reset_size=2.0)
  np.testing.assert_array_equal(dead, [False, True, False, True, False, True])
  np.testing.assert_array_equal(new_codebook[~dead], codebook[~dead])
  np.testing.assert_array_equal(new_size, np.where(dead, 2.0, size))
  flat = np.asarray(z).reshape(-1, 2)
  for k in np.flatnonzero(dead):  # each restarted code is one of the batch's vectors
    assert np.any(np.all(flat == np.asarray(new_codebook[k]), axis=-1))
  np.testing.assert_allclose(new_sum[dead], 2.0 * new_codebook[dead], rtol=1e-6)


def test_kmeans_recovers_well_separated_clusters():
  rng = np.random.default_rng(5)
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
  labels = rng.integers(0, 4, 400)
  points = centres[labels] + rng.normal(scale=0.5, size=(400, 2))
  # k-means++ seeding puts one seed in each cluster (with high probability; this seed does)
  centroids, counts = vq.kmeans(jnp.asarray(points, jnp.float32), jax.random.key(2), 4, 10)
  order = np.argsort(np.asarray(centroids) @ np.array([1.0, 100.0]))  # match by position
  means = np.stack([points[labels == k].mean(0) for k in range(4)])
  np.testing.assert_allclose(np.asarray(centroids)[order], means, atol=1e-4)
  np.testing.assert_array_equal(np.asarray(counts)[order], np.bincount(labels, minlength=4))


@pytest.mark.parametrize("counts,perplexity,dead", [
    ([5.0, 5.0, 5.0, 5.0], 4.0, 0),  # uniform use of K codes: K
    ([0.0, 9.0, 0.0, 0.0], 1.0, 3),  # one code: 1
    ([1.0, 3.0, 0.0, 0.0], np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))), 2),
])
def test_codebook_perplexity_and_dead_codes(counts, perplexity, dead):
  np.testing.assert_allclose(vq.codebook_perplexity(jnp.asarray(counts)), perplexity, rtol=1e-6)
  assert int(vq.dead_codes(jnp.asarray(counts))) == dead


def test_code_counts_with_weights():
  codes = jnp.array([[0, 2], [2, 2]])
  np.testing.assert_array_equal(vq.code_counts(codes, 4), [1, 0, 3, 0])
  np.testing.assert_array_equal(vq.code_counts(codes, 4, jnp.array([[1.0], [0.0]])), [1, 0, 1, 0])
