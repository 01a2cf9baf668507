"""Inception-v3 for standard FID: the architecture table, the weight loader, the layers.

Without the real weights (not obtainable here) these check the wiring and the
weight-file conventions, not agreement with TensorFlow's FID numbers.
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
