"""tap_conv: lax.conv's values and both gradients, with a per-tap kernel gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from jax.test_util import check_grads

from gen_jax.nn import causal_conv, gated
from gen_jax.nn.causal_conv import CausalConv, tap_conv


def lax_conv(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("batch,height,width,cin,cout,kernel_hw,padding", [
    (2, 6, 7, 3, 5, (2, 3), ((1, 0), (1, 1))),      # a causal 3x3 (rows above + centre row)
    (1, 5, 5, 4, 8, (4, 7), ((3, 0), (3, 3))),      # a causal 7x7
    (2, 4, 6, 2, 3, (1, 3), ((0, 0), (3, -1))),     # horizontal mask 'A': a cropped column
    (3, 3, 4, 5, 2, (3, 3), ((1, 1), (1, 1))),      # plain SAME
    (1, 8, 3, 1, 4, (2, 2), ((0, 0), (0, 0))),      # VALID, output smaller than input
])
def test_values_and_gradients_equal_lax(batch, height, width, cin, cout, kernel_hw, padding):
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (batch, height, width, cin))
  kernel = jax.random.normal(kk, (*kernel_hw, cin, cout))
  expected, expected_vjp = jax.vjp(lambda v, k: lax_conv(v, k, padding), x, kernel)
  actual, actual_vjp = jax.vjp(lambda v, k: tap_conv(v, k, padding), x, kernel)
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
  grad = jax.random.normal(kg, expected.shape)
  for got, want in zip(actual_vjp(grad), expected_vjp(grad)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gradients_match_finite_differences():
  x = jax.random.normal(jax.random.key(1), (1, 4, 5, 2))
  kernel = jax.random.normal(jax.random.key(2), (2, 3, 2, 3))
  check_grads(lambda v, k: tap_conv(v, k, ((1, 0), (1, 1))), (x, kernel),
                            order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_dispatch_uses_taps_only_when_wide_on_a_large_grid(monkeypatch):
  calls = []
  monkeypatch.setattr(causal_conv, "tap_conv",
                      lambda *args: calls.append(args) or lax_conv(*args))
  x = jnp.ones((1, 16, 16, 128))  # 256 positions
  padding = ((1, 0), (1, 1))
  causal_conv.causal_conv2d(x, jnp.ones((2, 3, 128, 128)), padding)
  assert len(calls) == 1  # Cout = Cin (the PixelCNN :peer)
  causal_conv.causal_conv2d(x, jnp.ones((2, 3, 128, 256)), padding)
  assert len(calls) == 2
  causal_conv.causal_conv2d(x[..., :64], jnp.ones((2, 3, 64, 128)), padding)
  assert len(calls) == 3  # from 64 features on (the default Gated PixelCNN)
  causal_conv.causal_conv2d(x[..., :32], jnp.ones((2, 3, 32, 64)), padding)
  assert len(calls) == 3  # too few input features
  causal_conv.causal_conv2d(x, jnp.ones((2, 3, 128, 64)), padding)
  assert len(calls) == 3  # Cout < Cin
  causal_conv.causal_conv2d(x[:, :7, :7], jnp.ones((2, 3, 128, 128)), padding)
  assert len(calls) == 3  # a 7x7 grid (the VQ priors' codes)


@pytest.mark.parametrize("num_groups,mask_type", [(1, "A"), (1, "B"), (3, "B")])
def test_layers_on_the_tap_path_match_lax_and_stay_causal(monkeypatch, num_groups, mask_type):
  """With the threshold lowered so these small layers take tap_conv: the same
  gradients as with lax's, and the jacobian's support unchanged (causality)."""
  cin, cout, height, width = 3, 6, 5, 6
  layers = [CausalConv(cin, cout, 3, mask_type, num_groups=num_groups, rngs=nnx.Rngs(0)),
            gated.HorizontalConv(cin, cout, 3, mask_type, num_groups=num_groups,
                                 rngs=nnx.Rngs(1)),
            gated.VerticalConv(cin, cout, 3, rngs=nnx.Rngs(2))]
  x = jax.random.normal(jax.random.key(3), (2, height, width, cin))

  def grads_and_support(layer):
    def loss(params, v):
      return jnp.sum(jnp.sin(nnx.merge(graph, params)(v)))
    graph, params = nnx.split(layer)
    param_grads, x_grad = jax.grad(loss, argnums=(0, 1))(params, x)
    jacobian = jax.jacrev(lambda v: layer(v)[0])(x[:1])[:, :, :, 0]
    return jax.tree.leaves(param_grads) + [x_grad], np.abs(np.asarray(jacobian)) > 0

  for layer in layers:
    monkeypatch.setattr(causal_conv, "TAP_GRADIENT_MIN_FEATURES", 10**9)
    want_grads, want_support = grads_and_support(layer)
    monkeypatch.setattr(causal_conv, "TAP_GRADIENT_MIN_FEATURES", 1)
    monkeypatch.setattr(causal_conv, "TAP_GRADIENT_MIN_POSITIONS", 1)
    got_grads, got_support = grads_and_support(layer)
    for got, want in zip(got_grads, want_grads):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got_support, want_support)


def test_bfloat16_gradients_keep_the_dtype_and_match_lax():
  x = jax.random.normal(jax.random.key(4), (2, 5, 6, 8)).astype(jnp.bfloat16)
  kernel = jax.random.normal(jax.random.key(5), (2, 3, 8, 16)).astype(jnp.bfloat16)
  padding = ((1, 0), (1, 1))

  def loss(conv):
    return lambda v, k: jnp.sum(conv(v, k, padding).astype(jnp.float32) ** 2)
  got = jax.jit(jax.grad(loss(tap_conv), argnums=(0, 1)))(x, kernel)
  want = jax.jit(jax.grad(loss(lax_conv), argnums=(0, 1)))(x, kernel)
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32),
                               rtol=5e-2, atol=5e-1)

