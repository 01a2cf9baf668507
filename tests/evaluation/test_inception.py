"""Inception-v3 for standard FID: the architecture table, the weight loader, the layers.

Without the real weights (not obtainable here) these check the wiring, the
weight-file conventions and the numbers against an independent numpy forward
pass on random weights, not agreement with TensorFlow's FID numbers.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.errors import UserError
from gen_jax.evaluation import inception


@functools.cache
def random_state_dict(seed=0, dtype=np.float32):
  """Arrays of the pytorch-fid names and shapes: He-scaled kernels, random BN statistics."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in inception.expected_shapes().items():
    if name.endswith("conv.weight"):
      arrays[name] = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))
    elif name.endswith("running_var") or name.endswith("bn.weight"):
      arrays[name] = rng.uniform(0.5, 1.5, size=shape)
    else:
      arrays[name] = rng.normal(size=shape) * 0.1
  return {name: value.astype(dtype) for name, value in arrays.items()}


def test_parameter_count_is_inception_v3s():
  """torchvision's Inception-v3 has 27,161,264 parameters; without its auxiliary head
  (3,326,696) and 1000-way fc (2,049,000), 21,785,568 are convolution and BN weights."""
  shapes = inception.expected_shapes()
  learnable = [name for name in shapes if name.endswith(("conv.weight", "bn.weight", "bn.bias"))]
  assert sum(int(np.prod(shapes[name])) for name in learnable) == 21_785_568
  assert len(inception.UNITS) == 94


def test_loader_names_the_missing_or_misshapen_array(tmp_path):
  with pytest.raises(UserError, match=r"eval.inception_weights='' is not a file"):
    inception.load_params("")
  arrays = {"Conv2d_1a_3x3.conv.weight": np.zeros((32, 3, 3, 3), np.float32)}
  np.savez(tmp_path / "partial.npz", **arrays)
  with pytest.raises(UserError, match=r"has no array 'Conv2d_1a_3x3.bn.weight'"):
    inception.load_params(str(tmp_path / "partial.npz"))
  arrays = {name: np.zeros(shape, np.float16) for name, shape in
            inception.expected_shapes().items()}
  arrays["Mixed_6b.branch7x7_2.conv.weight"] = np.zeros((128, 128, 7, 1), np.float16)  # 7x1
  np.savez(tmp_path / "transposed.npz", **arrays)
  with pytest.raises(UserError, match=r"branch7x7_2.conv.weight has shape \(128, 128, 7, 1\), "
                                      r"expected \(128, 128, 1, 7\)"):
    inception.load_params(str(tmp_path / "transposed.npz"))


def reference_unit(arrays, name, x):
  """conv (OIHW, cross-correlation as in PyTorch) -> BN (eval) -> ReLU, in plain numpy."""
  _, _, _, (kh, kw), stride, (pad_h, pad_w) = inception.UNITS[name]
  weight = arrays[f"{name}.conv.weight"].astype(np.float64)  # [O, I, kh, kw]
  x = np.pad(x.astype(np.float64), ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
  out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  y = np.zeros((x.shape[0], out_h, out_w, weight.shape[0]))
  for i in range(out_h):
    for j in range(out_w):
      patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]  # [B, kh, kw, I]
      y[:, i, j] = np.einsum("bhwi,oihw->bo", patch, weight)
  bn = {field: arrays[f"{name}.bn.{field}"] for field in
        ("weight", "bias", "running_mean", "running_var")}
  y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
  return np.maximum(y, 0)


@pytest.mark.parametrize("name,spatial", [
    ("Conv2d_1a_3x3", (9, 8)),  # stride 2, no padding
    ("Mixed_6b.branch7x7_2", (5, 9)),  # a 1x7 kernel, padding (0, 3)
    ("Mixed_7b.branch3x3_2b", (4, 3)),  # a 3x1 kernel, padding (1, 0)
])
def test_folded_unit_equals_conv_batch_norm_relu(name, spatial):
  arrays = random_state_dict()
  params = inception.params_from_state_dict(arrays)
  c_in = inception.UNITS[name][1]
  x = np.random.default_rng(1).normal(size=(2, *spatial, c_in)).astype(np.float32)
  np.testing.assert_allclose(inception.unit(params, name, jnp.asarray(x)),
                             reference_unit(arrays, name, x), rtol=1e-4, atol=1e-4)


def test_average_pool_counts_only_in_image_taps():
  x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
  pooled = np.asarray(inception.average_pool(jnp.asarray(x)))[0, ..., 0]
  image = x[0, ..., 0]
  for i in range(3):
    for j in range(4):
      window = image[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
      np.testing.assert_allclose(pooled[i, j], window.mean(), rtol=1e-6)


def test_network_from_a_weights_file_gives_2048_pool_features(tmp_path):
  np.savez(tmp_path / "inception.npz", **random_state_dict(dtype=np.float16))
  network = inception.load_feature_network(str(tmp_path / "inception.npz"))
  images = np.random.default_rng(2).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
  features, logits = network.apply(jnp.asarray(images))
  assert features.shape == (2, 2048) and logits is None and network.prefix == "inception_"
  assert np.all(np.isfinite(features)) and np.all(np.asarray(features) >= 0)  # after ReLU
  assert not np.allclose(features[0], features[1])  # it sees the image


# ------------------------------------------- an independent numpy forward pass
# Written from pytorch-fid's FIDInceptionA/C/E (and torchvision's InceptionB/D):
# the order each block concatenates its branches in, the pooling of each block,
# unfolded batch norm, and its input transform (bilinear resize with half-pixel
# centres, then [0, 1] -> [-1, 1]). Nothing below calls gen_jax's layers.


def numpy_resize_bilinear(x, size):
  """[B, H, W, C] -> [B, size, size, C]: half-pixel centres, no antialiasing
  (F.interpolate(mode='bilinear', align_corners=False) when upsampling)."""
  def axis_taps(n_in):
    source = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(int), n_in - 1)
    return low, np.minimum(low + 1, n_in - 1), source - low
  (r0, r1, fr), (c0, c1, fc) = axis_taps(x.shape[1]), axis_taps(x.shape[2])
  rows = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
  return rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]


def numpy_unit(arrays, name, x):
  """conv (tap by tap) -> eval-mode batch norm (eps 1e-3) -> ReLU, float64."""
  _, _, _, (kh, kw), stride, (ph, pw) = inception.UNITS[name]
  weight = arrays[f"{name}.conv.weight"].astype(np.float64)  # [O, I, kh, kw]
  x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  y = 0.0
  for dy in range(kh):
    for dx in range(kw):
      window = x[:, dy:dy + stride * (out_h - 1) + 1:stride, dx:dx + stride * (out_w - 1) + 1:stride]
      y = y + window @ weight[:, :, dy, dx].T
  bn = [arrays[f"{name}.bn.{f}"].astype(np.float64)
        for f in ("weight", "bias", "running_mean", "running_var")]
  return np.maximum((y - bn[2]) / np.sqrt(bn[3] + 1e-3) * bn[0] + bn[1], 0.0)


def numpy_pool(x, stride, padding, kind):
  """3x3 pooling; 'avg' counts only in-image taps (count_include_pad=False)."""
  fill = -np.inf if kind == "max" else 0.0
  padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                  constant_values=fill)
  ones = np.pad(np.ones(x.shape[1:3]), padding)
  out_h, out_w = (padded.shape[1] - 3) // stride + 1, (padded.shape[2] - 3) // stride + 1
  out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
  for i in range(out_h):
    for j in range(out_w):
      window = padded[:, i * stride:i * stride + 3, j * stride:j * stride + 3]
      if kind == "max":
        out[:, i, j] = window.max(axis=(1, 2))
      else:
        out[:, i, j] = window.sum(axis=(1, 2)) / ones[i * stride:i * stride + 3,
                                                      j * stride:j * stride + 3].sum()
  return out


def numpy_pool_features(arrays, images, size):
  u = lambda name, h: numpy_unit(arrays, name, h)  # noqa: E731
  chain = lambda block, names, h: functools.reduce(  # noqa: E731
      lambda acc, n: u(f"{block}.{n}", acc), names, h)
  x = images.astype(np.float64) / 255.0
  x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
  x = 2.0 * numpy_resize_bilinear(x, size) - 1.0
  for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
    x = u(name, x)
  x = u("Conv2d_4a_3x3", u("Conv2d_3b_1x1", numpy_pool(x, 2, 0, "max")))
  x = numpy_pool(x, 2, 0, "max")
  for b in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):  # InceptionA
    x = np.concatenate([u(f"{b}.branch1x1", x),
                        chain(b, ["branch5x5_1", "branch5x5_2"], x),
                        chain(b, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], x),
                        u(f"{b}.branch_pool", numpy_pool(x, 1, 1, "avg"))], -1)
  x = np.concatenate([u("Mixed_6a.branch3x3", x),  # InceptionB
                      chain("Mixed_6a", ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], x),
                      numpy_pool(x, 2, 0, "max")], -1)
  for b in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):  # InceptionC
    x = np.concatenate([u(f"{b}.branch1x1", x),
                        chain(b, [f"branch7x7_{i}" for i in (1, 2, 3)], x),
                        chain(b, [f"branch7x7dbl_{i}" for i in (1, 2, 3, 4, 5)], x),
                        u(f"{b}.branch_pool", numpy_pool(x, 1, 1, "avg"))], -1)
  x = np.concatenate([chain("Mixed_7a", ["branch3x3_1", "branch3x3_2"], x),  # InceptionD
                      chain("Mixed_7a", [f"branch7x7x3_{i}" for i in (1, 2, 3, 4)], x),
                      numpy_pool(x, 2, 0, "max")], -1)
  for b, pool in (("Mixed_7b", "avg"), ("Mixed_7c", "max")):  # FIDInceptionE_1, _2
    three = u(f"{b}.branch3x3_1", x)
    double = chain(b, ["branch3x3dbl_1", "branch3x3dbl_2"], x)
    x = np.concatenate([u(f"{b}.branch1x1", x),
                        u(f"{b}.branch3x3_2a", three), u(f"{b}.branch3x3_2b", three),
                        u(f"{b}.branch3x3dbl_3a", double), u(f"{b}.branch3x3dbl_3b", double),
                        u(f"{b}.branch_pool", numpy_pool(x, 1, 1, pool))], -1)
  return x.mean(axis=(1, 2))


def test_preprocess_is_bilinear_upsampling_to_minus_one_one():
  images = np.random.default_rng(3).integers(0, 256, (2, 6, 5, 1), dtype=np.uint8)
  expected = 2.0 * numpy_resize_bilinear(np.repeat(images / 255.0, 3, -1), 13) - 1.0
  np.testing.assert_allclose(inception.preprocess(jnp.asarray(images), 13), expected,
                             atol=1e-5)


def test_pool_features_equal_an_independent_numpy_forward_pass():
  """At 107 x 107 every block runs on a grid of at least 2x2 (75 x 75, the smallest
  input the architecture takes, leaves the last blocks 1x1, where pooling kinds agree);
  random weights, float64 reference. Feeding [0, 1] instead of
  [-1, 1], reordering a block's branches or swapping a pooling breaks equality."""
  arrays = random_state_dict()
  params = inception.params_from_state_dict(arrays)
  images = np.random.default_rng(4).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
  expected = numpy_pool_features(arrays, images, 107)
  features = np.asarray(inception.pool_features(params, jnp.asarray(images), 107))
  assert np.mean(expected > 0) > 0.2 and not np.allclose(expected[0], expected[1])
  np.testing.assert_allclose(features, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
