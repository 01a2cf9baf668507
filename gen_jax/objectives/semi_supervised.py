"""The M2 bounds of Kingma et al. 2014 ("Semi-Supervised Learning with Deep Generative Models").

Generative model p(y) p(z) p(x|y, z), p(y) uniform over K classes, p(z) = N(0, I);
inference model q(y|x) q(z|x, y). Per example, in nats:

  L(x, y) = E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || p(z))      <= log p(x, y)
  U(x)    = sum_y q(y|x) (L(x, y) - log q(y|x))                                <= log p(x)

and the training loss of one example is -L(x, y) - alpha log q(y|x) when its
label is known, -U(x) when not (alpha weighs the classifier, which U alone
trains only through the generative model's view of the classes).
"""

import math

import jax
import jax.numpy as jnp


def labelled_bound(log_likelihood: jax.Array, kl: jax.Array, num_classes: int) -> jax.Array:
  """L(x, y) = log p(x|y, z) - log K - KL(q(z|x, y) || p(z)), z ~ q(z|x, y).

  Args:
    log_likelihood: [...] log p(x|y, z) in nats.
    kl: [...] the analytic KL of q(z|x, y) to N(0, I).
    num_classes: K, for the uniform prior log p(y) = -log K.

  Returns:
    [...] nats.
  """
  return log_likelihood - math.log(num_classes) - kl


def unlabelled_bound(class_log_probs: jax.Array, labelled_bounds: jax.Array) -> jax.Array:
  """U(x) = sum_y q(y|x) (L(x, y) - log q(y|x)) = E_q(y|x)[L(x, y)] + H(q(y|x)).

  Equal to logsumexp_y L(x, y) - KL(q(y|x) || softmax_y L(x, y)): U is tightest
  when q(y|x) is the generative model's own posterior over classes.

  Args:
    class_log_probs: [B, K] log q(y|x), normalised over K.
    labelled_bounds: [B, K] L(x, y) for every class y.

  Returns:
    [B] nats.
  """
  probs = jnp.exp(class_log_probs)
  return jnp.sum(probs * (labelled_bounds - class_log_probs), axis=-1)


def semi_supervised_loss(labelled_bounds: jax.Array, class_log_probs: jax.Array,
                         labels: jax.Array, is_labelled: jax.Array,
                         classification_weight: float) -> jax.Array:
  """Per-example M2 loss: -L(x, y) - alpha log q(y|x) if labelled, else -U(x).

  Args:
    labelled_bounds: [B, K] L(x, y) for every class.
    class_log_probs: [B, K] log q(y|x).
    labels: [B] int labels (any value where unlabelled).
    is_labelled: [B] 1.0 where the label is known, 0.0 where not.
    classification_weight: alpha.

  Returns:
    [B] nats.
  """
  known = jnp.clip(labels, 0, labelled_bounds.shape[-1] - 1)[:, None]  # [B, 1]
  labelled_loss = -(jnp.take_along_axis(labelled_bounds, known, axis=-1)[:, 0]
                    + classification_weight * jnp.take_along_axis(class_log_probs, known, -1)[:, 0])
  unlabelled_loss = -unlabelled_bound(class_log_probs, labelled_bounds)
  return jnp.where(is_labelled > 0, labelled_loss, unlabelled_loss)
