"""VQ-VAE (van den Oord et al. 2017) and the two-scale VQ-VAE-2 (Razavi et al. 2019).

The modules hold the encoders and decoders only. The codebooks and the
quantization itself live outside them (objectives/vector_quantization.py, the
task's state), so a forward pass takes a `quantize(scale, z) -> (e, codes)`
callback: the task passes one built from its codebooks (nearest code with a
straight-through gradient). Levels are named; the decoder reads one embedding
grid per scale, `decode({scale: [B, h, w, D]})`.

  VQ-VAE:   x -> encoder -> z [H/2^n, W/2^n, D] -> quantize -> decoder -> mu
  VQ-VAE-2: x -> bottom encoder -> h_b [H/2^n]   -> top encoder -> z_t [H/2^(n+1)]
            e_t = quantize(z_t)
            z_b = 1x1(concat(h_b, top decoder(e_t)))   (the bottom sees the top)
            e_b = quantize(z_b)
            mu  = decoder(concat(upsample(e_t), e_b))

The decoders give the mean mu of a discretized Gaussian over the pixel levels
(in [-1, 1]); its variance is not a parameter of the modules: the task keeps
it as a running mean squared error (tasks/vq.py, `reconstruction_variance`).

The networks compute in their parameters' dtype (bf16 under mixed precision,
nn/precision.py); the encoder outputs z handed to `quantize`, the returned z and
the decoder mean are float32, so code assignment and the losses stay fp32.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.errors import UserError
from gen_jax.nn.precision import compute_dtype
from gen_jax.nn.upsample import ConvTranspose


class ResidualBlock(nnx.Module):
  """x + 1x1(relu(3x3(relu(x)))), the VQ-VAE residual block."""

  def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
    self.conv3 = nnx.Conv(features, hidden, (3, 3), rngs=rngs)
    self.conv1 = nnx.Conv(hidden, features, (1, 1), rngs=rngs)

  def __call__(self, x):  # [B, H, W, F]
    return x + self.conv1(jax.nn.relu(self.conv3(jax.nn.relu(x))))


class ResidualStack(nnx.Module):
  """`num_blocks` residual blocks and a final ReLU."""

  def __init__(self, features: int, hidden: int, num_blocks: int, *, rngs: nnx.Rngs):
    self.blocks = nnx.List([ResidualBlock(features, hidden, rngs=rngs) for _ in range(num_blocks)])

  def __call__(self, x):
    for block in self.blocks:
      x = block(x)
    return jax.nn.relu(x)


class Encoder(nnx.Module):
  """`num_downsamples` 4x4 stride-2 convs, a 3x3 conv and a residual stack: [B, H, W, C_in]
  -> [B, H / 2^n, W / 2^n, features]."""

  def __init__(self, in_features: int, features: int, residual_hidden: int, num_residual: int,
               num_downsamples: int, *, rngs: nnx.Rngs):
    widths = [in_features] + [features // 2] * (num_downsamples - 1) + [features]
    self.downsamples = nnx.List([nnx.Conv(widths[i], widths[i + 1], (4, 4), (2, 2), rngs=rngs)
                                 for i in range(num_downsamples)])
    self.conv = nnx.Conv(widths[-1], features, (3, 3), rngs=rngs)
    self.residual = ResidualStack(features, residual_hidden, num_residual, rngs=rngs)

  def __call__(self, x):
    for conv in self.downsamples:
      x = jax.nn.relu(conv(x))
    return self.residual(self.conv(x))


class Decoder(nnx.Module):
  """A 3x3 conv, a residual stack and `num_upsamples` 4x4 stride-2 transposed convs:
  [B, h, w, C_in] -> [B, h 2^n, w 2^n, out_features] (no activation on the output)."""

  def __init__(self, in_features: int, features: int, residual_hidden: int, num_residual: int,
               num_upsamples: int, out_features: int, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, features, (3, 3), rngs=rngs)
    self.residual = ResidualStack(features, residual_hidden, num_residual, rngs=rngs)
    widths = [features] + [features // 2] * (num_upsamples - 1) + [out_features]
    self.upsamples = nnx.List([
        ConvTranspose(widths[i], widths[i + 1], (4, 4), (2, 2), rngs=rngs)
        for i in range(num_upsamples)])

  def __call__(self, x):
    x = self.residual(self.conv(x))
    for index, conv in enumerate(self.upsamples):
      x = conv(x)
      if index + 1 < len(self.upsamples):
        x = jax.nn.relu(x)
    return x


def check_downsampling(image_shape, num_downsamples: int, model: str) -> None:
  """The latent grids must tile the image: 2^n (VQ-VAE-2: 2^(n+1)) divides H and W."""
  height, width = image_shape[:2]
  factor = 2**(num_downsamples + (model == "vqvae2"))
  if num_downsamples < 1 or height % factor or width % factor:
    raise UserError(f"{model}: model.num_downsamples={num_downsamples} does not fit "
                    f"{height}x{width} images: it must be >= 1 and {factor} must divide both "
                    "sides" + (" (the top grid is one more 2x down)" if model == "vqvae2" else ""))


class VQVAE(nnx.Module):
  """One latent grid ('latent') of D-dimensional codes."""

  scales = ("latent",)

  def __init__(self, *, num_channels: int, features: int, residual_hidden: int,
               num_residual: int, num_downsamples: int, embedding_dim: int, rngs: nnx.Rngs):
    self.encoder = Encoder(num_channels, features, residual_hidden, num_residual,
                           num_downsamples, rngs=rngs)
    self.pre_quantize = nnx.Conv(features, embedding_dim, (1, 1), rngs=rngs)
    self.decoder = Decoder(embedding_dim, features, residual_hidden, num_residual,
                           num_downsamples, num_channels, rngs=rngs)

  @staticmethod
  def latent_shapes(image_shape, num_downsamples: int) -> dict[str, tuple[int, int]]:
    check_downsampling(image_shape, num_downsamples, "vqvae")
    factor = 2**num_downsamples
    return {"latent": (image_shape[0] // factor, image_shape[1] // factor)}

  def __call__(self, x, quantize):
    """x [B, H, W, C] in [-1, 1] -> (mu [B, H, W, C], {scale: z_e}, {scale: codes})."""
    z = self.pre_quantize(self.encoder(x.astype(compute_dtype(self))))  # [B, h, w, D]
    z = z.astype(jnp.float32)
    embedding, codes = quantize("latent", z)
    return self.decode({"latent": embedding}), {"latent": z}, {"latent": codes}

  def decode(self, embeddings: dict) -> jax.Array:
    """{scale: [B, h, w, D]} -> mu [B, H, W, C], float32."""
    return self.decoder(embeddings["latent"].astype(compute_dtype(self))).astype(jnp.float32)


class VQVAE2(nnx.Module):
  """Top ('top', 2x coarser) and bottom ('bottom') grids; the bottom is conditioned on the top."""

  scales = ("top", "bottom")

  def __init__(self, *, num_channels: int, features: int, residual_hidden: int,
               num_residual: int, num_downsamples: int, embedding_dim: int, rngs: nnx.Rngs):
    self.bottom_encoder = Encoder(num_channels, features, residual_hidden, num_residual,
                                  num_downsamples, rngs=rngs)
    self.top_encoder = Encoder(features, features, residual_hidden, num_residual, 1, rngs=rngs)
    self.top_pre_quantize = nnx.Conv(features, embedding_dim, (1, 1), rngs=rngs)
    # The top codes decoded to the bottom grid: what the bottom encoder is conditioned on.
    self.top_decoder = Decoder(embedding_dim, features, residual_hidden, num_residual, 1,
                               features, rngs=rngs)
    self.bottom_pre_quantize = nnx.Conv(2 * features, embedding_dim, (1, 1), rngs=rngs)
    self.upsample_top = ConvTranspose(embedding_dim, embedding_dim, (4, 4), (2, 2), rngs=rngs)
    self.decoder = Decoder(2 * embedding_dim, features, residual_hidden, num_residual,
                           num_downsamples, num_channels, rngs=rngs)

  @staticmethod
  def latent_shapes(image_shape, num_downsamples: int) -> dict[str, tuple[int, int]]:
    check_downsampling(image_shape, num_downsamples, "vqvae2")
    bottom = 2**num_downsamples
    return {"top": (image_shape[0] // (2 * bottom), image_shape[1] // (2 * bottom)),
            "bottom": (image_shape[0] // bottom, image_shape[1] // bottom)}

  def __call__(self, x, quantize):
    """x [B, H, W, C] in [-1, 1] -> (mu [B, H, W, C], {scale: z_e}, {scale: codes})."""
    dtype = compute_dtype(self)
    bottom_features = self.bottom_encoder(x.astype(dtype))  # [B, hb, wb, F]
    z_top = self.top_pre_quantize(self.top_encoder(bottom_features))  # [B, hb/2, wb/2, D]
    z_top = z_top.astype(jnp.float32)
    top, top_codes = quantize("top", z_top)
    z_bottom = self.bottom_pre_quantize(jnp.concatenate(
        [bottom_features, self.top_decoder(top.astype(dtype))], axis=-1))  # [B, hb, wb, D]
    z_bottom = z_bottom.astype(jnp.float32)
    bottom, bottom_codes = quantize("bottom", z_bottom)
    mean = self.decode({"top": top, "bottom": bottom})
    return mean, {"top": z_top, "bottom": z_bottom}, {"top": top_codes, "bottom": bottom_codes}

  def decode(self, embeddings: dict) -> jax.Array:
    """{scale: [B, h, w, D]} -> mu [B, H, W, C], float32."""
    dtype = compute_dtype(self)
    return self.decoder(jnp.concatenate(
        [self.upsample_top(embeddings["top"].astype(dtype)), embeddings["bottom"].astype(dtype)],
        axis=-1)).astype(jnp.float32)


MODELS = {"vqvae": VQVAE, "vqvae2": VQVAE2}
