"""PixelCNN++ (Salimans et al. 2017, "PixelCNN++: Improving the PixelCNN with
Discretized Logistic Mixture Likelihood and Other Modifications").

Two streams carry the causal context: `u` sees the rows above the pixel
(down-shifted convolutions), `ul` sees the rows above and the pixels to the
left (down-right-shifted convolutions). Every layer is a gated resnet block

  c = conv(concat_elu(x)) [+ 1x1(concat_elu(skip))]
  c = conv'(dropout(concat_elu(c)))          -> [a | b]
  x + a * sigmoid(b)

The up pass runs `num_scales` stages of `num_resnets` blocks, halving the
resolution between stages with stride-2 shifted convolutions, and keeps every
output; the down pass runs the stages back (the first with `num_resnets`
blocks, the others with one more), doubling the resolution with stride-2
transposed convolutions, and each of its blocks takes the matching up-pass
output as `skip` (`ul` also takes the down pass's own `u`). A 1x1 head on
elu(ul) gives the discretized logistic mixture parameters of every pixel
(gen_jax.objectives.logistic_mixture). The network is causal between pixels
only; the mixture couples the channels of a pixel (for grayscale there is
nothing to couple).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from gen_jax.nn.precision import compute_dtype
from gen_jax.nn.shifted_conv import ShiftedConv, down_shift, right_shift, upsample_by_phases
from gen_jax.objectives import logistic_mixture

# (u, ul) kernels of the paper: a 2x3 window of the rows above; a 2x2 window up-left.
KERNELS = {"down": (2, 3), "down_right": (2, 2)}


def concat_elu(x: jax.Array) -> jax.Array:  # [..., F] -> [..., 2F]
  """elu([x, -x]): both signs survive the nonlinearity (the paper's concat_elu)."""
  return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


class Linear1x1(nnx.Module):
  """A 1x1 convolution as one 2-D matmul over the channel axis ('network in network')."""

  def __init__(self, in_features: int, out_features: int, *, init_scale: float = 1.0,
               bias: np.ndarray | None = None, rngs: nnx.Rngs):
    kernel_init = nnx.initializers.variance_scaling(init_scale ** 2, "fan_in", "truncated_normal")
    self.linear = nnx.Linear(
        in_features, out_features, rngs=rngs, kernel_init=kernel_init,
        bias_init=(nnx.initializers.zeros_init() if bias is None
                   else lambda key, shape, dtype: jnp.asarray(bias, dtype).reshape(shape)))

  def __call__(self, x: jax.Array) -> jax.Array:  # [..., Cin] -> [..., Cout]
    y = self.linear(x.reshape(-1, x.shape[-1]))
    return y.reshape(*x.shape[:-1], y.shape[-1])


class GatedResnet(nnx.Module):
  """x + a * sigmoid(b) with [a | b] from two shifted convolutions (see the module docstring)."""

  def __init__(self, features: int, direction: str, skip_features: int, dropout_rate: float,
               *, rngs: nnx.Rngs):
    kernel = KERNELS[direction]
    self.conv_in = ShiftedConv(2 * features, features, kernel, direction, rngs=rngs)
    self.skip = Linear1x1(2 * skip_features, features, rngs=rngs) if skip_features else None
    self.dropout = nnx.Dropout(dropout_rate)
    # Small gate weights: each block starts near the identity (the paper's init_scale 0.1).
    self.conv_out = ShiftedConv(2 * features, 2 * features, kernel, direction, init_scale=0.1,
                                rngs=rngs)

  def __call__(self, x: jax.Array, skip: jax.Array | None, dropout_rng: jax.Array | None,
               rows: "RowPass | None" = None) -> jax.Array:  # [B, H, W, F]
    c = convolve(self.conv_in, concat_elu(x), rows)
    if self.skip is not None:
      c = c + self.skip(concat_elu(skip))
    c = self.dropout(concat_elu(c), deterministic=dropout_rng is None, rngs=dropout_rng)
    a, b = jnp.split(convolve(self.conv_out, c, rows), 2, axis=-1)
    return x + a * jax.nn.sigmoid(b)


class ResnetStreams(nnx.Module):
  """One gated resnet block on each stream. u's skip input is the up-pass u (down
  pass only); ul's is the new u, joined in the down pass by the up-pass ul."""

  def __init__(self, features: int, down_pass: bool, dropout_rate: float, *, rngs: nnx.Rngs):
    self.u = GatedResnet(features, "down", features if down_pass else 0, dropout_rate, rngs=rngs)
    self.ul = GatedResnet(features, "down_right", (2 if down_pass else 1) * features,
                          dropout_rate, rngs=rngs)

  def __call__(self, u, ul, up_pass_u, up_pass_ul, dropout_rng, rows=None):  # [B, H, W, F] each
    u_rng, ul_rng = (None, None) if dropout_rng is None else jax.random.split(dropout_rng)
    u = self.u(u, up_pass_u, u_rng, rows)
    ul_skip = u if up_pass_ul is None else jnp.concatenate([u, up_pass_ul], axis=-1)
    return u, self.ul(ul, ul_skip, ul_rng, rows)


class Resample(nnx.Module):
  """Halves ('down') or doubles ('up') the resolution of both streams, causally."""

  def __init__(self, features: int, resample: str, *, rngs: nnx.Rngs):
    self.u = ShiftedConv(features, features, KERNELS["down"], "down", resample=resample,
                         rngs=rngs)
    self.ul = ShiftedConv(features, features, KERNELS["down_right"], "down_right",
                          resample=resample, rngs=rngs)

  def __call__(self, u, ul, rows=None):
    return convolve(self.u, u, rows), convolve(self.ul, ul, rows)


class PixelCNNPlusPlus(nnx.Module):
  """uint8 images [B, H, W, C] -> mixture parameters [B, H, W, P], P = num_mixture_params."""

  def __init__(self, *, num_channels: int, num_levels: int, features: int, num_resnets: int,
               num_scales: int, num_mixtures: int, dropout_rate: float, rngs: nnx.Rngs):
    self.num_channels, self.num_levels, self.num_mixtures = num_channels, num_levels, num_mixtures
    self.num_scales, self.num_resnets = num_scales, num_resnets
    # Input: the image in [-1, 1] and a channel of ones, so that zero padding
    # (outside the image) differs from a sub-pixel that happens to be 0.
    in_features = num_channels + 1
    self.u_first = ShiftedConv(in_features, features, (2, 3), "down", rngs=rngs)
    self.ul_first_above = ShiftedConv(in_features, features, (1, 3), "down", rngs=rngs)
    self.ul_first_left = ShiftedConv(in_features, features, (2, 1), "down_right", rngs=rngs)
    self.up_blocks = nnx.List([
        nnx.List([ResnetStreams(features, False, dropout_rate, rngs=rngs)
                  for _ in range(num_resnets)]) for _ in range(num_scales)])
    self.downsample = nnx.List([Resample(features, "down", rngs=rngs)
                                for _ in range(num_scales - 1)])
    self.down_blocks = nnx.List([
        nnx.List([ResnetStreams(features, True, dropout_rate, rngs=rngs)
                  for _ in range(num_resnets + (scale > 0))]) for scale in range(num_scales)])
    self.upsample = nnx.List([Resample(features, "up", rngs=rngs)
                              for _ in range(num_scales - 1)])
    # The head starts near the uniform distribution (small weights, a near-uniform mixture
    # as bias), as a softmax head with zero logits does.
    self.head = Linear1x1(
        features, logistic_mixture.num_mixture_params(num_channels, num_mixtures),
        init_scale=0.1, bias=logistic_mixture.uniform_mixture_raw(num_channels, num_mixtures),
        rngs=rngs)

  def inputs(self, images: jax.Array) -> jax.Array:
    """uint8 [B, H, W, C] -> [B, H, W, C + 1]: the image in [-1, 1] and a channel of ones."""
    x = logistic_mixture.level_to_unit(images, self.num_levels).astype(compute_dtype(self))
    return jnp.concatenate([x, jnp.ones_like(x[..., :1])], axis=-1)

  def __call__(self, images: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    x = self.inputs(images)  # [B, H, W, C + 1]
    # Rows above for u; rows above and the pixels to the left for ul.
    u = down_shift(self.u_first(x))
    ul = down_shift(self.ul_first_above(x)) + right_shift(self.ul_first_left(x))
    return self.trunk(u, ul, dropout_rng)

  def trunk(self, u: jax.Array, ul: jax.Array, dropout_rng: jax.Array | None = None,
            rows: "RowPass | None" = None) -> jax.Array:
    """The up and down passes and the head, from the first layer's two streams."""
    num_blocks = self.num_scales * (2 * self.num_resnets + 1) - 1
    block_rngs = iter([] if dropout_rng is None else jax.random.split(dropout_rng, num_blocks))

    def next_rng():
      return None if dropout_rng is None else next(block_rngs)

    u_outputs, ul_outputs = [u], [ul]
    for scale, blocks in enumerate(self.up_blocks):
      if scale > 0:
        u, ul = self.downsample[scale - 1](u, ul, rows)
        u_outputs.append(u)
        ul_outputs.append(ul)
      for block in blocks:
        u, ul = block(u, ul, None, None, next_rng(), rows)
        u_outputs.append(u)
        ul_outputs.append(ul)
    u, ul = u_outputs.pop(), ul_outputs.pop()  # the down pass starts where the up pass ends
    for scale, blocks in enumerate(self.down_blocks):
      if scale > 0:
        u, ul = self.upsample[scale - 1](u, ul, rows)
      for block in blocks:
        u, ul = block(u, ul, u_outputs.pop(), ul_outputs.pop(), next_rng(), rows)
    assert not u_outputs and not ul_outputs  # every up-pass output feeds one down-pass block
    return self.head(jax.nn.elu(ul))  # [B, H, W, P]

  # ------------------------------------------------------------ cached sampling
  # Drawing pixel (r, j) can change, in every layer, only the row of its scale that
  # holds image row r (row r >> s at scale s): rows above it are final. So each
  # draw runs the network on that one row per scale (`RowPass`), every convolution
  # reading the rows above it from a ring buffer of its input's last rows, about
  # 1/H of a full pass. The first layer reads the image itself (rows r-2 .. r),
  # which holds every pixel drawn so far.

  def init_cache(self, images: jax.Array) -> list[jax.Array]:
    """The ring buffers of a RowPass, all zero (the rows above row 0)."""
    shapes = jax.eval_shape(lambda: self.raw_at(None, images, 0, 0)[1])
    return [jnp.zeros(shape.shape, shape.dtype) for shape in shapes]

  def raw_at(self, rings: list[jax.Array] | None, images: jax.Array, row, column):
    """(mixture parameters [N, P] at pixel (row, column), rings); rings None: all zero."""
    rows = RowPass(rings, row, images.shape[2])
    x = self.inputs(lax.dynamic_slice_in_dim(
        jnp.pad(images, ((0, 0), (2, 0), (0, 0), (0, 0))), row, 3, axis=1))  # rows r-2 .. r
    x = x.at[:, :2].multiply((row - 2 + jnp.arange(2) >= 0)[None, :, None, None])  # zero above
    below_top = jnp.asarray(row > 0, x.dtype)  # down_shift's zero row 0 (not the conv's bias)
    u = valid_rows(self.u_first, x[:, :2]) * below_top  # u_first on rows r-2, r-1: shifted
    ul = (valid_rows(self.ul_first_above, x[:, 1:2]) * below_top
          + right_shift(valid_rows(self.ul_first_left, x[:, 1:])))
    raw = self.trunk(u, ul, None, rows)  # [N, 1, W, P]
    return lax.dynamic_index_in_dim(raw[:, 0], column, 1, keepdims=False), rows.rings_out


def valid_rows(conv: ShiftedConv, window: jax.Array) -> jax.Array:
  """A stride-1 or downsampling ShiftedConv's output row from exactly the input rows it
  reads ([N, kh, W, Cin] -> [N, 1, W', Cout]): no padding along rows."""
  return lax.conv_general_dilated(
      window, conv.kernel[...], conv.strides, ((0, 0), conv.padding[1]),
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv.bias[...]


def convolve(conv: ShiftedConv, x: jax.Array, rows: "RowPass | None") -> jax.Array:
  return conv(x) if rows is None else rows.convolve(conv, x)


class RowPass:
  """The network on one row per scale: `convolve` takes a convolution's input row at
  its scale ([N, 1, W_s, Cin], image row r lies in row r >> s) and returns its output
  row, keeping the input's last rows in a ring buffer (rings, in call order)."""

  def __init__(self, rings: list[jax.Array] | None, row, width: int):
    self.rings_in = None if rings is None else iter(rings)
    self.rings_out = []
    self.row, self.width = row, width

  def scale_row(self, x: jax.Array):
    return self.row // (self.width // x.shape[2])  # [N, 1, W_s, C]: row r >> s

  def convolve(self, conv: ShiftedConv, x: jax.Array) -> jax.Array:
    if conv.dilation == (2, 2):  # upsampling: output rows 2i, 2i + 1 read input row i only
      y = upsample_by_phases(x, conv.kernel[...], conv.padding) + conv.bias[...]
      return lax.dynamic_slice_in_dim(y, self.scale_row(y) % 2, 1, axis=1)
    kernel_rows, stride = conv.kernel.shape[0], conv.strides[0]
    row = self.scale_row(x)
    size = kernel_rows + stride - 1  # stride 2 reads rows 2i - 1, 2i while at 2i + 1
    ring = (jnp.zeros((x.shape[0], size, *x.shape[2:]), x.dtype) if self.rings_in is None
            else next(self.rings_in))
    ring = lax.dynamic_update_slice_in_dim(ring, x.astype(ring.dtype), row % size, axis=1)
    self.rings_out.append(ring)
    last = row - row % stride  # the last input row the output row reads
    window = jnp.take(ring, (last - kernel_rows + 1 + jnp.arange(kernel_rows)) % size, axis=1)
    return valid_rows(conv, window)
