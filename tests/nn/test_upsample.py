"""nn/upsample.py's ConvTranspose: nnx.ConvTranspose's parameters, values and gradients,
computed by phases where it is 2-D, stride 2 and 'SAME'."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.nn import upsample
from gen_jax.nn.upsample import ConvTranspose


def values_and_gradients(layer, call, x):
  graph, params = nnx.split(layer)

  def loss(params, x):
    return jnp.sum(jnp.sin(call(nnx.merge(graph, params), x)))
  y = call(layer, x)
  return y, jax.grad(loss, argnums=(0, 1))(params, x)


@pytest.mark.parametrize("kernel_shape,height,width,use_bias", [
    ((4, 4), 7, 7, True), ((4, 4), 3, 6, False), ((3, 3), 5, 4, True), ((2, 2), 4, 5, True),
    ((4, 3), 6, 3, True), ((5, 2), 2, 3, True)])
def test_values_and_gradients_equal_nnx_conv_transpose(kernel_shape, height, width, use_bias):
  layer = ConvTranspose(3, 5, kernel_shape, (2, 2), use_bias=use_bias, rngs=nnx.Rngs(0))
  if use_bias:  # a non-zero bias, so a wrong broadcast shows
    layer.bias[...] = jnp.arange(5.0)
  x = jax.random.normal(jax.random.key(1), (2, height, width, 3))
  got_y, got_grads = values_and_gradients(layer, lambda m, v: m(v), x)
  want_y, want_grads = values_and_gradients(layer, nnx.ConvTranspose.__call__, x)
  assert got_y.shape == want_y.shape == (2, 2 * height, 2 * width, 5)
  np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_same_parameters_as_nnx_so_checkpoints_restore():
  ours = nnx.state(ConvTranspose(4, 6, (4, 4), (2, 2), rngs=nnx.Rngs(3)))
  theirs = nnx.state(nnx.ConvTranspose(4, 6, (4, 4), (2, 2), rngs=nnx.Rngs(3)))
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(strides=(1, 1)), dict(strides=(2, 2), padding="VALID"),
                                    dict(strides=(3, 3)), dict(strides=(2, 2), kernel_size=(1, 1))])
def test_other_settings_run_as_nnx(monkeypatch, kwargs):
  monkeypatch.setattr(upsample, "upsample_by_phases", lambda *args: pytest.fail("by phases"))
  kwargs = {"kernel_size": (4, 4), **kwargs}
  layer = ConvTranspose(3, 2, rngs=nnx.Rngs(0), **kwargs)
  x = jax.random.normal(jax.random.key(2), (1, 4, 4, 3))
  np.testing.assert_array_equal(layer(x), nnx.ConvTranspose.__call__(layer, x))


def test_bfloat16_compute_keeps_the_dtype():
  layer = ConvTranspose(3, 4, (4, 4), (2, 2), dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(4), (2, 5, 5, 3))
  got, want = layer(x), nnx.ConvTranspose.__call__(layer, x)
  assert got.dtype == want.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-2, atol=2e-2)
