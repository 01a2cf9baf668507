"""Initialisations that are a property of a model, not of a layer type."""

import jax.numpy as jnp
from flax import nnx


def zero_parameters(module: nnx.Module) -> nnx.Module:
  """`module` with every parameter set to zero, returned for chaining.

  For the last layer of a likelihood head: its outputs (logits, or a
  distribution's raw parameters) are then 0 for every input, so a softmax or
  Bernoulli head starts exactly at the uniform distribution (8 bits/dim on
  256 levels) and training starts from knowing nothing instead of from worse.
  The gradient of the layer's own weights is not zero (it is the layer's input
  times the loss gradient), so it trains from the first step; the layers
  below it start receiving gradient once it has moved.
  """
  for _, value in nnx.iter_graph(module):
    if isinstance(value, nnx.Param):
      value.set_value(jnp.zeros_like(value[...]))
  return module


def submodule(module: nnx.Module, path: str) -> nnx.Module:
  """The submodule at a dotted attribute path ('decoder.mlp.layers.-1': integers index lists)."""
  for part in path.split("."):
    module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
  return module
