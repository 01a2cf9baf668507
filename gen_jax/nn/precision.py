"""The compute dtype of a module: the dtype its parameters arrive in.

Mixed precision casts a bf16 copy of the fp32 parameters inside the train
step (tasks.common.make_train_step); a model converts its inputs to its
parameters' dtype so that every layer then computes in bf16.
"""

import jax
import jax.numpy as jnp
from flax import nnx


def compute_dtype(module: nnx.Module) -> jnp.dtype:
  """The dtype of the module's first floating parameter (float32 when it has none)."""
  for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf.dtype
  return jnp.dtype(jnp.float32)
