"""gen_jax: deep generative models in JAX/Flax behind one trainer."""

__version__ = "0.1.0"
