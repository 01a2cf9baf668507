"""Inception-v3 pool features for standard FID, from a user-supplied weights file.

The FID network (Szegedy et al. 2016's Inception-v3 with the weights of the
2015-12-05 TensorFlow graph that Heusel et al. 2017 used) cannot be downloaded
on these machines, so gen_jax runs it only when the user supplies the weights:
`--config.eval.inception_weights=PATH`, an `.npz` holding the state dict of
pytorch-fid's `FIDInceptionA/C/E` network (`pt_inception-2015-12-05-6726825d.pth`)
under its own names, converted once with PyTorch:

  import numpy as np, torch
  state = torch.load("pt_inception-2015-12-05-6726825d.pth", map_location="cpu")
  np.savez("inception_fid.npz", **{k: v.numpy() for k, v in state.items()})

Names and shapes are checked on load (`<block>.conv.weight` [O, I, kh, kw],
`<block>.bn.{weight,bias,running_mean,running_var}` [O]); `fc.*` is unused.
Images are resized to 299 x 299 (bilinear), grey images repeated to RGB, and
scaled to [-1, 1]; the output is the 2048-d global average pool.

What is verified: the layer wiring against the published architecture (block
widths, the FID variants' pooling), the loader's checks, and the features
themselves against an independent float64 numpy forward pass on random
weights (input scaling, branch order, pooling; tests/evaluation/test_inception.py). What is not: agreement with the TensorFlow FID numbers, which needs the
real weights (not obtainable here).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax.errors import UserError
from gen_jax.evaluation.fid import FeatureNetwork

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
BATCH_NORM_EPSILON = 1e-3
INPUT_SIZE = 299

# (name, in, out, kernel (h, w), stride, padding (h, w)) of every conv + BN + ReLU unit.
_STEM = [
    ("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1)),
    ("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0)),
]


def block_a(name, c_in, pool_features):
  return [(f"{name}.branch1x1", c_in, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch5x5_1", c_in, 48, (1, 1), 1, (0, 0)),
          (f"{name}.branch5x5_2", 48, 64, (5, 5), 1, (2, 2)),
          (f"{name}.branch3x3dbl_1", c_in, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch_pool", c_in, pool_features, (1, 1), 1, (0, 0))]


def block_b(name, c_in):
  return [(f"{name}.branch3x3", c_in, 384, (3, 3), 2, (0, 0)),
          (f"{name}.branch3x3dbl_1", c_in, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0))]


def block_c(name, c_in, c7):
  return [(f"{name}.branch1x1", c_in, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7_1", c_in, c7, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7_2", c7, c7, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_1", c_in, c7, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)),
          (f"{name}.branch_pool", c_in, 192, (1, 1), 1, (0, 0))]


def block_d(name, c_in):
  return [(f"{name}.branch3x3_1", c_in, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
          (f"{name}.branch7x7x3_1", c_in, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0))]


def block_e(name, c_in):
  return [(f"{name}.branch1x1", c_in, 320, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_1", c_in, 384, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
          (f"{name}.branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
          (f"{name}.branch3x3dbl_1", c_in, 448, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
          (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
          (f"{name}.branch_pool", c_in, 192, (1, 1), 1, (0, 0))]


UNITS = {unit[0]: unit for unit in (
    _STEM + block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64)
    + block_a("Mixed_5d", 288, 64) + block_b("Mixed_6a", 288)
    + block_c("Mixed_6b", 768, 128) + block_c("Mixed_6c", 768, 160)
    + block_c("Mixed_6d", 768, 160) + block_c("Mixed_6e", 768, 192)
    + block_d("Mixed_7a", 768) + block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048))}


def expected_shapes() -> dict[str, tuple[int, ...]]:
  """Weight-file name -> shape, for every array the network reads."""
  shapes = {}
  for name, c_in, c_out, (kh, kw), _, _ in UNITS.values():
    shapes[f"{name}.conv.weight"] = (c_out, c_in, kh, kw)
    for field in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{name}.bn.{field}"] = (c_out,)
  return shapes


def params_from_state_dict(arrays) -> dict[str, dict[str, np.ndarray]]:
  """{unit: {'kernel' [kh, kw, I, O], 'scale' [O], 'shift' [O]}}: BN folded into the conv."""
  params = {}
  for name in UNITS:
    weight = np.asarray(arrays[f"{name}.conv.weight"], np.float32)  # [O, I, kh, kw]
    gamma, beta, mean, variance = (np.asarray(arrays[f"{name}.bn.{field}"], np.float32)
                                   for field in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(variance + BATCH_NORM_EPSILON)
    params[name] = {"kernel": weight.transpose(2, 3, 1, 0), "scale": scale,
                    "shift": beta - mean * scale}
  return params


def load_params(path: str) -> dict[str, dict[str, np.ndarray]]:
  """The folded parameters from a weights file, each name and shape checked."""
  if not path or not os.path.isfile(path):
    raise UserError(f"eval.inception_weights={path!r} is not a file: convert pytorch-fid's "
                    "pt_inception-2015-12-05-6726825d.pth to .npz (see "
                    "gen_jax/evaluation/inception.py)")
  with np.load(path) as arrays:
    for name, shape in expected_shapes().items():
      if name not in arrays:
        raise UserError(f"{path} has no array {name!r}: not a pytorch-fid Inception state dict")
      if arrays[name].shape != shape:
        raise UserError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
    return params_from_state_dict(arrays)


# ---------------------------------------------------------------- the network


def unit(params, name: str, x: jax.Array) -> jax.Array:
  """relu(BN(conv(x))) with the BN folded: [B, H, W, I] -> [B, H', W', O]."""
  _, _, _, _, stride, (pad_h, pad_w) = UNITS[name]
  y = lax.conv_general_dilated(x, params[name]["kernel"], (stride, stride),
                               ((pad_h, pad_h), (pad_w, pad_w)),
                               dimension_numbers=_DIMENSION_NUMBERS)
  return jax.nn.relu(y * params[name]["scale"] + params[name]["shift"])


def max_pool(x: jax.Array, stride: int, padding: int = 0) -> jax.Array:
  """3x3 max pooling (padding with -inf)."""
  pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, stride, stride, 1), pads)


def average_pool(x: jax.Array) -> jax.Array:
  """3x3, stride 1, padding 1, averaging over the in-image taps only (count_include_pad=False)."""
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = lax.reduce_window(x, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pads)
  count = lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, lax.add,
                            (1, 3, 3, 1), (1, 1, 1, 1), pads)
  return total / count


def mixed_a(params, name, x):
  p = lambda branch, h: unit(params, f"{name}.{branch}", h)  # noqa: E731
  return jnp.concatenate([
      p("branch1x1", x),
      p("branch5x5_2", p("branch5x5_1", x)),
      p("branch3x3dbl_3", p("branch3x3dbl_2", p("branch3x3dbl_1", x))),
      p("branch_pool", average_pool(x))], axis=-1)


def mixed_b(params, name, x):
  p = lambda branch, h: unit(params, f"{name}.{branch}", h)  # noqa: E731
  return jnp.concatenate([
      p("branch3x3", x),
      p("branch3x3dbl_3", p("branch3x3dbl_2", p("branch3x3dbl_1", x))),
      max_pool(x, 2)], axis=-1)


def mixed_c(params, name, x):
  p = lambda branch, h: unit(params, f"{name}.{branch}", h)  # noqa: E731
  seven = p("branch7x7_3", p("branch7x7_2", p("branch7x7_1", x)))
  double = x
  for index in range(1, 6):
    double = p(f"branch7x7dbl_{index}", double)
  return jnp.concatenate([p("branch1x1", x), seven, double, p("branch_pool", average_pool(x))],
                         axis=-1)


def mixed_d(params, name, x):
  p = lambda branch, h: unit(params, f"{name}.{branch}", h)  # noqa: E731
  three = p("branch3x3_2", p("branch3x3_1", x))
  seven = x
  for index in range(1, 5):
    seven = p(f"branch7x7x3_{index}", seven)
  return jnp.concatenate([three, seven, max_pool(x, 2)], axis=-1)


def mixed_e(params, name, x, pool):
  """pool: the FID network averages (count_include_pad=False) in Mixed_7b, max-pools in 7c."""
  p = lambda branch, h: unit(params, f"{name}.{branch}", h)  # noqa: E731
  three = p("branch3x3_1", x)
  double = p("branch3x3dbl_2", p("branch3x3dbl_1", x))
  return jnp.concatenate([
      p("branch1x1", x),
      p("branch3x3_2a", three), p("branch3x3_2b", three),
      p("branch3x3dbl_3a", double), p("branch3x3dbl_3b", double),
      p("branch_pool", pool(x))], axis=-1)


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """uint8 [B, H, W, 1 or 3] -> float [B, size, size, 3] in [-1, 1], bilinear resize."""
  x = images.astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear", antialias=False)
  return 2.0 * x - 1.0


def pool_features(params, images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """uint8 images [B, H, W, C] -> the 2048-d pool3 features [B, 2048]."""
  x = preprocess(images, size)
  for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
    x = unit(params, name, x)
  x = max_pool(x, 2)
  x = unit(params, "Conv2d_4a_3x3", unit(params, "Conv2d_3b_1x1", x))
  x = max_pool(x, 2)  # [B, 35, 35, 192] at size 299
  for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
    x = mixed_a(params, name, x)
  x = mixed_b(params, "Mixed_6a", x)  # [B, 17, 17, 768]
  for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
    x = mixed_c(params, name, x)
  x = mixed_d(params, "Mixed_7a", x)  # [B, 8, 8, 1280]
  x = mixed_e(params, "Mixed_7b", x, average_pool)
  x = mixed_e(params, "Mixed_7c", x, lambda h: max_pool(h, 1, padding=1))  # [B, 8, 8, 2048]
  return jnp.mean(x, axis=(1, 2))


def load_feature_network(path: str) -> FeatureNetwork:
  """Inception-v3 pool3 features from eval.inception_weights, as `inception_fid`/`inception_kid`."""
  params = jax.tree.map(jnp.asarray, load_params(path))
  return FeatureNetwork(jax.jit(lambda images: (pool_features(params, images), None)),
                        prefix="inception_")
