"""The M2 bounds of Kingma et al. 2014 ("Semi-Supervised Learning with Deep Generative Models").

Generative model p(y) p(z) p(x|y, z), p(y) uniform over K classes, p(z) = N(0, I);
inference model q(y|x) q(z|x, y). Per example, in nats:

  L(x, y) = E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || p(z))      <= log p(x, y)
  U(x)    = sum_y q(y|x) (L(x, y) - log q(y|x))                                <= log p(x)

Training maximises their eq. (9) over N_l labelled and N_u unlabelled images,

  J^alpha = sum_labelled L(x, y) + sum_unlabelled U(x) + alpha E_labelled[log q(y|x)],

alpha = 0.1 (N_l + N_u) in the paper (alpha weighs the classifier, which U
alone trains only through the generative model's view of the classes). A
training split that repeats each labelled image c times reaches J^alpha by
weighing each labelled row 1 / c (`semi_supervised_loss`).
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
                         labels: jax.Array, labelled_weight: jax.Array, alpha: float,
                         num_labelled: int) -> jax.Array:
  """Per-row M2 loss: -w (L(x, y) + alpha / N_l log q(y|x)) if labelled, else -U(x).

  w = 1 / c for a labelled image repeated c times in an epoch, so the rows of
  one epoch sum to -J^alpha: each labelled image's bound counts once, and the
  cross-entropy averaged over the N_l labelled images is weighed by alpha.

  Args:
    labelled_bounds: [B, K] L(x, y) for every class.
    class_log_probs: [B, K] log q(y|x).
    labels: [B] int labels (any value where unlabelled).
    labelled_weight: [B] w where the label is known, 0.0 where not.
    alpha: the weight of the labelled set's mean cross-entropy (0.1 N in the paper).
    num_labelled: N_l, the distinct labelled images.

  Returns:
    [B] nats.
  """
  known = jnp.clip(labels, 0, labelled_bounds.shape[-1] - 1)[:, None]  # [B, 1]
  labelled_loss = -labelled_weight * (
      jnp.take_along_axis(labelled_bounds, known, axis=-1)[:, 0]
      + alpha / num_labelled * jnp.take_along_axis(class_log_probs, known, -1)[:, 0])
  unlabelled_loss = -unlabelled_bound(class_log_probs, labelled_bounds)
  return jnp.where(labelled_weight > 0, labelled_loss, unlabelled_loss)
