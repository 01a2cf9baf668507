"""PixelRNN: causal in raster and R -> G -> B order; the Row LSTM sees a triangle,
the Diagonal BiLSTM all earlier pixels but one; config errors are one-line UserErrors."""

import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from gen_jax.errors import UserError
from gen_jax.models.pixelrnn import PixelRNN
from gen_jax.objectives import likelihoods
from gen_jax.tasks.autoregressive import check_pixelrnn_config

FIRST_KERNEL = 3
ROW_KERNEL = 3
NUM_LAYERS = 2


def small_model(layer_type, channels, num_layers=NUM_LAYERS):
  # 16 features per colour group: wide enough that no ReLU path of the head dies.
  width = 16 * channels
  return PixelRNN(layer_type=layer_type, num_channels=channels, num_levels=256, features=width,
                  hidden_features=width, num_layers=num_layers, kernel_size=ROW_KERNEL,
                  first_kernel_size=FIRST_KERNEL, head_features=width, rngs=nnx.Rngs(0))


SHAPES = {1: (6, 7), 3: (4, 5)}  # (height, width) of the Jacobian tests, by channel count


@functools.cache
def sub_pixel_jacobian(layer_type, channels):
  """|d sum(logits[i]) / d x[j]| over flat sub-pixel indices (raster, then channel),
  of a NUM_LAYERS-layer model on one SHAPES[channels] image (cached: several tests read it)."""
  model, (height, width) = small_model(layer_type, channels), SHAPES[channels]
  x = jax.random.uniform(jax.random.key(1), (1, height, width, channels), maxval=255.0)
  # jit: one compiled program, not one per eager op of the batched backward pass
  jacobian = jax.jit(jax.jacrev(lambda v: model(v)[0].sum(-1)))(x)  # [H, W, C, 1, H, W, C]
  size = height * width * channels
  return np.abs(np.asarray(jacobian)).reshape(size, size)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layer_type", ["row_lstm", "diagonal_bilstm"])
def test_causal_in_raster_and_channel_order(layer_type, channels):
  jac = sub_pixel_jacobian(layer_type, channels)
  # Sub-pixel (i, c) never depends on sub-pixels at or after (i, c) ...
  np.testing.assert_array_equal(np.triu(jac), 0.0)
  # ... and, in colour, sees the earlier channels of its own pixel: G <- R, B <- R, G.
  c = channels
  for pixel in range(jac.shape[0] // c):
    for out_channel in range(c):
      assert np.all(jac[c * pixel + out_channel, c * pixel:c * pixel + out_channel] > 0)


def row_lstm_receptive_field(height, width, num_layers, pixel):
  """The input pixels the Row LSTM PixelRNN's output at `pixel` can depend on, by
  following its layers' connections (zero-padded: paths stay inside the image)."""
  inside = lambda r, j: 0 <= r < height and 0 <= j < width
  first_half, half = FIRST_KERNEL // 2, ROW_KERNEL // 2

  @functools.cache
  def lstm_inputs(r, j):  # h[r, j] <- x[r, j-half .. j] and h[r-1, j-half .. j+half]
    seen = {(r, j - t) for t in range(half + 1) if inside(r, j - t)}
    for dj in range(-half, half + 1):
      if inside(r - 1, j + dj):
        seen |= lstm_inputs(r - 1, j + dj)
    return frozenset(seen)

  def first_inputs(r, j):  # mask A: the k//2 rows above, and the row to the left
    above = {(r - di, j + dj) for di in range(1, first_half + 1)
             for dj in range(-first_half, first_half + 1)}
    left = {(r, j - dj) for dj in range(1, first_half + 1)}
    return {p for p in above | left if inside(*p)}

  seen = {pixel}
  for _ in range(num_layers):  # x + conv1x1(LSTM(x)): the pixel itself and the LSTM's inputs
    seen = set().union(*({p} | lstm_inputs(*p) for p in seen))
  return set().union(*(first_inputs(*p) for p in seen))


def test_row_lstm_sees_a_triangle_and_the_diagonal_bilstm_everything():
  (height, width), num_layers = SHAPES[1], NUM_LAYERS
  row_jac = sub_pixel_jacobian("row_lstm", 1) > 0
  diagonal_jac = sub_pixel_jacobian("diagonal_bilstm", 1) > 0
  # The Diagonal BiLSTM: every earlier pixel but one. The last pixel of row r-1
  # reaches the features only at rows >= r (the first layer is mask A), and from
  # there only columns >= W-1-k//2 of row r, so pixels left of them cannot see it.
  expected = np.tril(np.ones_like(diagonal_jac), -1).reshape(height, width, height, width)
  for r in range(1, height):
    expected[r, :width - 1 - FIRST_KERNEL // 2, r - 1, width - 1] = False
  np.testing.assert_array_equal(diagonal_jac, expected.reshape(diagonal_jac.shape))
  # The Row LSTM: exactly the triangle its connections reach.
  for r in range(height):
    for j in range(width):
      expected = np.zeros((height, width), bool)
      for p in row_lstm_receptive_field(height, width, num_layers, (r, j)):
        expected[p] = True
      np.testing.assert_array_equal(row_jac[r * width + j].reshape(height, width), expected,
                                    err_msg=f"pixel {(r, j)}")
  # ... a strict subset of the context: here it misses the start of the present row
  # and the far right of the row above.
  assert np.all(row_jac <= diagonal_jac) and row_jac.sum() < diagonal_jac.sum()
  r, j = 5, 6
  for missed in [(r, 0), (r - 1, 0)]:  # beyond 1 + 2 layers x 1 column to the left
    assert not row_jac[r * width + j, missed[0] * width + missed[1]]
    assert diagonal_jac[r * width + j, missed[0] * width + missed[1]]
  r, j = 3, 0
  assert not row_jac[r * width + j, (r - 1) * width + width - 2]  # up, far right
  assert diagonal_jac[r * width + j, (r - 1) * width + width - 2]


@pytest.mark.parametrize("layer_type", ["row_lstm", "diagonal_bilstm"])
def test_logit_shape_and_initial_bits_per_dim(layer_type):
  model = small_model(layer_type, 3)
  images = jax.random.randint(jax.random.key(2), (2, 6, 5, 3), 0, 256).astype(jnp.uint8)
  logits = jax.jit(lambda v: model(v))(images)
  chex.assert_shape(logits, (2, 6, 5, 3, 256))
  bpd = likelihoods.bits_per_dim(likelihoods.categorical_nll(logits, images), images[0].size)
  np.testing.assert_allclose(np.asarray(bpd), 8.0, atol=0.5)  # near uniform at init


@pytest.mark.parametrize("key,value,message", [
    ("features", 16, "model.features=16 must be a multiple of 3"),
    ("hidden_features", 8, "model.hidden_features=8 must be a multiple of 3"),
    ("kernel_size", 4, "model.kernel_size=4 must be odd"),
    ("first_kernel_size", 0, "model.first_kernel_size=0 must be odd"),
    ("num_layers", 0, "model.num_layers=0 must be at least 1"),
])
def test_bad_model_config_is_a_user_error(key, value, message):
  model_config = ml_collections.ConfigDict(dict(
      features=24, hidden_features=12, head_features=24, kernel_size=3, first_kernel_size=7,
      num_layers=2))
  model_config[key] = value
  with pytest.raises(UserError, match=message):
    check_pixelrnn_config(model_config, num_channels=3)
