"""Vector quantization (van den Oord et al. 2017, "Neural Discrete Representation Learning").

An encoder output z_e (D features at each latent position) is replaced by its
nearest code e_k of a codebook [K, D]. The decoder sees the code; its gradient
reaches the encoder through the straight-through estimator. The codebook
follows the encoder outputs either by a loss (`codebook_loss`) or by an
exponential moving average of the outputs assigned to each code
(`ema_codebook_update`), and `commitment_loss` keeps the encoder near its codes:

  loss = reconstruction + ||sg(z_e) - e||^2 + beta ||z_e - sg(e)||^2

Every statistic here is a sum over the array it is given. Inside a jit'd step
whose batch is sharded over devices that array is the global batch, so the
codebook comes out the same on 1 and N devices.

Shapes: z [..., D] (any leading axes: batch and latent positions), codebook
[K, D], codes [...] int32 in [0, K).
"""

import jax
import jax.numpy as jnp


def squared_distances(z: jax.Array, codebook: jax.Array) -> jax.Array:
  """||z - e_k||^2 = ||z||^2 - 2 z.e_k + ||e_k||^2 for every code: [..., D] -> [..., K]."""
  cross = jnp.einsum("...d,kd->...k", z, codebook)  # [..., K]
  return (jnp.sum(z**2, axis=-1, keepdims=True) - 2.0 * cross
          + jnp.sum(codebook**2, axis=-1))


def nearest_code(z: jax.Array, codebook: jax.Array) -> jax.Array:
  """k(z) = argmin_k ||z - e_k||^2: [..., D] -> [...] int32."""
  return jnp.argmin(squared_distances(z, codebook), axis=-1).astype(jnp.int32)


def quantize(z: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(e_{k(z)} [..., D], k(z) [...]): each vector replaced by its nearest code."""
  codes = nearest_code(z, codebook)
  return codebook[codes], codes


def straight_through(z: jax.Array, quantized: jax.Array) -> jax.Array:
  """z + sg(e - z): the value of e, the gradient of the identity in z.

  The decoder's gradient with respect to its input e is passed to the encoder
  output z unchanged; no gradient reaches the codebook through this path.
  """
  return z + jax.lax.stop_gradient(quantized - z)


def codebook_loss(z: jax.Array, quantized: jax.Array) -> jax.Array:
  """mean ||sg(z) - e||^2 (per element): moves the codes towards the encoder outputs."""
  return jnp.mean((jax.lax.stop_gradient(z) - quantized) ** 2)


def commitment_loss(z: jax.Array, quantized: jax.Array) -> jax.Array:
  """mean ||z - sg(e)||^2 (per element): keeps the encoder outputs near their codes."""
  return jnp.mean((z - jax.lax.stop_gradient(quantized)) ** 2)


def code_counts(codes: jax.Array, num_codes: int, weights: jax.Array | None = None) -> jax.Array:
  """n_k = sum_i w_i [codes_i = k]: how often each code is used ([...] -> [K]).

  `weights` (broadcastable to codes, e.g. an eval mask [B, 1, 1]) defaults to 1.
  """
  one_hot = jax.nn.one_hot(codes, num_codes, dtype=jnp.float32)  # [..., K]
  if weights is not None:
    one_hot = one_hot * jnp.broadcast_to(weights, codes.shape)[..., None]
  return jnp.sum(one_hot.reshape(-1, num_codes), axis=0)


def code_sums(z: jax.Array, codes: jax.Array, num_codes: int) -> jax.Array:
  """s_k = sum_{i: codes_i = k} z_i: [..., D], [...] -> [K, D]."""
  one_hot = jax.nn.one_hot(codes.reshape(-1), num_codes, dtype=z.dtype)  # [M, K]
  return one_hot.T @ z.reshape(-1, z.shape[-1])


def laplace_smoothed(cluster_size: jax.Array, epsilon: float) -> jax.Array:
  """N_k' = (N_k + eps) / (n + K eps) * n with n = sum_k N_k.

  Every smoothed count is positive (no division by zero for an unused code)
  and the total n is unchanged.
  """
  total = jnp.sum(cluster_size)
  return (cluster_size + epsilon) / (total + cluster_size.shape[0] * epsilon) * total


def ema_codebook_update(cluster_size: jax.Array, cluster_sum: jax.Array, z: jax.Array,
                        codes: jax.Array, *, decay: float, epsilon: float
                        ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One EMA step of the codebook (van den Oord et al. 2017, appendix A.1).

    N_k <- decay N_k + (1 - decay) n_k         n_k = #{i: codes_i = k}
    m_k <- decay m_k + (1 - decay) s_k         s_k = sum_{i: codes_i = k} z_i
    e_k  = m_k / N_k'                          N_k' Laplace-smoothed N_k

  Args:
    cluster_size: [K] N, the running assignment counts.
    cluster_sum: [K, D] m, the running sums of assigned encoder outputs.
    z: [..., D] encoder outputs of the (global) batch.
    codes: [...] their nearest codes.

  Returns:
    (codebook [K, D], cluster_size [K], cluster_sum [K, D]).
  """
  num_codes = cluster_size.shape[0]
  z = jax.lax.stop_gradient(z)
  cluster_size = decay * cluster_size + (1.0 - decay) * code_counts(codes, num_codes)
  cluster_sum = decay * cluster_sum + (1.0 - decay) * code_sums(z, codes, num_codes)
  codebook = cluster_sum / laplace_smoothed(cluster_size, epsilon)[:, None]
  return codebook, cluster_size, cluster_sum


def restart_dead_codes(codebook: jax.Array, cluster_size: jax.Array, cluster_sum: jax.Array,
                       z: jax.Array, rng: jax.Array, *, threshold: float, reset_size: float
                       ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Moves every code whose running count N_k < threshold onto a random encoder output.

  A restarted code k gets e_k = z_j for a uniformly drawn position j of the
  batch, N_k = reset_size and m_k = reset_size z_j (so an EMA codebook keeps
  e_k = m_k / N_k); live codes are untouched.

  Returns:
    (codebook, cluster_size, cluster_sum, dead [K] bool: the codes restarted).
  """
  flat = jax.lax.stop_gradient(z).reshape(-1, z.shape[-1])  # [M, D]
  dead = cluster_size < threshold  # [K]
  picks = flat[jax.random.randint(rng, (codebook.shape[0],), 0, flat.shape[0])]  # [K, D]
  codebook = jnp.where(dead[:, None], picks, codebook)
  cluster_size = jnp.where(dead, reset_size, cluster_size)
  cluster_sum = jnp.where(dead[:, None], reset_size * picks, cluster_sum)
  return codebook, cluster_size, cluster_sum, dead


def kmeans_plus_plus_seeds(points: jax.Array, rng: jax.Array, num_codes: int) -> jax.Array:
  """k-means++ seeding (Arthur & Vassilvitskii 2007): [M, D] -> [K, D] points of the set.

  The first seed is uniform; each next one is drawn with probability
  proportional to its squared distance to the nearest seed so far.
  """
  first = points[jax.random.randint(jax.random.fold_in(rng, 0), (), 0, points.shape[0])]
  seeds = jnp.zeros((num_codes, points.shape[-1]), points.dtype).at[0].set(first)
  nearest = jnp.sum((points - first) ** 2, axis=-1)  # [M] squared distance to the nearest seed

  def add_seed(k, carry):
    seeds, nearest = carry
    # all points already seeds (fewer distinct points than K): a uniform draw
    logits = jnp.log(jnp.maximum(nearest, 1e-30))
    seed = points[jax.random.categorical(jax.random.fold_in(rng, k), logits)]
    return seeds.at[k].set(seed), jnp.minimum(nearest, jnp.sum((points - seed) ** 2, axis=-1))

  seeds, _ = jax.lax.fori_loop(1, num_codes, add_seed, (seeds, nearest))
  return seeds


def kmeans(points: jax.Array, rng: jax.Array, num_codes: int, num_iterations: int
           ) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means from k-means++ seeds: (centroids [K, D], counts [K]).

    k(i) = argmin_k ||x_i - c_k||^2,   c_k <- mean{x_i : k(i) = k}

  A cluster that loses all its points keeps its centroid. Used to initialise a
  codebook from the first batch of encoder outputs.
  """
  points = jax.lax.stop_gradient(points).reshape(-1, points.shape[-1])  # [M, D]
  centroids = kmeans_plus_plus_seeds(points, rng, num_codes)

  def lloyd_step(_, centroids):
    codes = nearest_code(points, centroids)
    counts = code_counts(codes, num_codes)
    sums = code_sums(points, codes, num_codes)
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centroids)

  centroids = jax.lax.fori_loop(0, num_iterations, lloyd_step, centroids)
  return centroids, code_counts(nearest_code(points, centroids), num_codes)


def codebook_perplexity(counts: jax.Array) -> jax.Array:
  """exp(-sum_k p_k log p_k), p = counts / sum(counts): K for uniform use, 1 for one code."""
  probs = counts / jnp.maximum(jnp.sum(counts), 1e-12)
  entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0))
  return jnp.exp(entropy)


def dead_codes(counts: jax.Array) -> jax.Array:
  """How many codes were never used: #{k : counts_k = 0}."""
  return jnp.sum(counts == 0)
