"""Priors over grids of VQ codes: a Gated PixelCNN with embedded codes.

The stage-2 model of VQ-VAE / VQ-VAE-2. A code grid [B, h, w] of integers in
[0, K) is modelled autoregressively in raster order by a GatedPixelCNN with
num_levels = K and one embedded channel. The bottom prior of VQ-VAE-2 is also
conditioned on the top codes: they are embedded, convolved and upsampled 2x to
the bottom grid, and the resulting map enters every gated layer at every
position (the top codes are given, so the map need not be causal).
"""

import jax
from flax import nnx

from gen_jax.models.gated_pixelcnn import GatedPixelCNN
from gen_jax.models.vqvae import ResidualStack
from gen_jax.nn.upsample import ConvTranspose


class CodeConditioning(nnx.Module):
  """Codes of the coarser grid [B, h, w] -> a feature map [B, 2h, 2w, features]."""

  def __init__(self, num_codes: int, features: int, num_residual: int, *, rngs: nnx.Rngs):
    self.embed = nnx.Embed(num_codes, features, rngs=rngs)
    self.conv = nnx.Conv(features, features, (3, 3), rngs=rngs)
    self.residual = ResidualStack(features, features, num_residual, rngs=rngs)
    self.upsample = ConvTranspose(features, features, (4, 4), (2, 2), rngs=rngs)

  def __call__(self, codes):
    return self.upsample(self.residual(self.conv(self.embed(codes))))


class CodePrior(nnx.Module):
  """p(codes) or p(codes | coarser codes): codes [B, h, w] -> logits [B, h, w, K]."""

  def __init__(self, *, num_codes: int, features: int, num_layers: int, kernel_size: int,
               first_kernel_size: int, skip_features: int, head_features: int,
               embed_features: int, condition_num_codes: int = 0, condition_features: int = 0,
               condition_residual: int = 1, rngs: nnx.Rngs):
    conditioned = condition_num_codes > 0
    self.pixelcnn = GatedPixelCNN(
        num_channels=1, num_levels=num_codes, features=features, num_layers=num_layers,
        kernel_size=kernel_size, first_kernel_size=first_kernel_size,
        skip_features=skip_features, head_features=head_features,
        embed_features=embed_features, condition_features=condition_features if conditioned else 0,
        rngs=rngs)
    self.conditioning = (CodeConditioning(condition_num_codes, condition_features,
                                          condition_residual, rngs=rngs) if conditioned else None)

  def condition_map(self, condition_codes: jax.Array | None) -> jax.Array | None:
    if self.conditioning is None:
      return None
    return self.conditioning(condition_codes)  # [B, h, w, S]

  def __call__(self, codes: jax.Array, condition_codes: jax.Array | None = None) -> jax.Array:
    logits = self.pixelcnn(codes[..., None], None, self.condition_map(condition_codes))
    return logits[..., 0, :]  # [B, h, w, K]

  def init_cache(self, codes: jax.Array, condition_codes: jax.Array | None = None) -> dict:
    """codes [N, h, w, 1] (the sampler's images) -> the GatedPixelCNN's cache."""
    return self.pixelcnn.init_cache(codes, None, self.condition_map(condition_codes))

  def logits_at(self, cache: dict, codes: jax.Array, row, column):
    """(logits [N, 1, K] at (row, column), cache); codes [N, h, w, 1]."""
    return self.pixelcnn.logits_at(cache, codes, row, column)
