"""Linear autoregression AR(p): likelihood, least squares, forecasts.

  X_t = c + sum_{i=1..p} phi_i X_{t-i} + e_t,   e_t ~ N(0, sigma^2) i.i.d.

Conditioned on the first p values, the likelihood of a series is a product of
Gaussians N(X_t; c + phi . (X_{t-1}, ..., X_{t-p}), sigma^2), so (c, phi) that
maximise it are the least-squares regression of X_t on its lags, and the
maximising sigma^2 is the mean squared residual (`ols_fit`).

k-step forecasts from the last p observations follow the same recursion with
the noise set to its mean: m_k = c + sum_i phi_i m_{k-i} (m_j = x_j for j <= 0),
and the error X_{t+k} - m_k = sum_{j<k} psi_j e_{t+k-j} has variance
sigma^2 sum_{j<k} psi_j^2, with psi_0 = 1, psi_j = sum_{i=1..min(j,p)} phi_i psi_{j-i}
(the moving-average weights of the process; Box & Jenkins, ch. 5).

Series are ordered oldest first. Functions take jnp or numpy arrays and work
under jit except `ols_fit` (numpy, for reference fits).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri


def lagged(windows: jax.Array, order: int) -> tuple[jax.Array, jax.Array]:
  """(lags [B, W-p, p] with lags[b, t, i] = x[b, t+p-1-i], targets [B, W-p] = x[b, p:])."""
  xp = np if isinstance(windows, np.ndarray) else jnp  # numpy keeps float64 for `ols_fit`
  width = windows.shape[-1]
  lags = xp.stack([windows[..., order - 1 - i:width - 1 - i] for i in range(order)], axis=-1)
  return lags, windows[..., order:]


def ar_conditional_mean(windows: jax.Array, intercept, coefficients: jax.Array) -> jax.Array:
  """E[X_t | X_{t-1..t-p}] = c + sum_i phi_i X_{t-i} at positions p..W-1: [B, W] -> [B, W-p]."""
  lags, _ = lagged(windows, coefficients.shape[-1])
  return intercept + lags @ coefficients


def ar_nll(windows: jax.Array, intercept, coefficients: jax.Array, noise_std) -> jax.Array:
  """-log N(x_t; c + phi . x_{t-1..t-p}, sigma^2) in nats at positions p..W-1: [B, W] -> [B, W-p].

    = log(sigma) + log(2 pi) / 2 + (x_t - mean_t)^2 / (2 sigma^2)
  """
  _, targets = lagged(windows, coefficients.shape[-1])
  residual = targets - ar_conditional_mean(windows, intercept, coefficients)
  return (jnp.log(noise_std) + 0.5 * math.log(2 * math.pi)
          + 0.5 * jnp.square(residual / noise_std))


def ols_fit(series: np.ndarray, order: int) -> dict[str, np.ndarray | float]:
  """The conditional maximum-likelihood AR(p) fit of a 1-D series, by least squares.

  Regresses x_t on (1, x_{t-1}, ..., x_{t-p}) for t = p..L-1 (numpy lstsq) and
  takes sigma^2 = the mean squared residual.
  Returns {'intercept': float, 'coefficients': [p], 'noise_std': float}.
  """
  series = np.asarray(series, np.float64)
  lags, targets = lagged(series, order)  # [L-p, p], [L-p]
  design = np.concatenate([np.ones((len(targets), 1)), lags], axis=1)  # [L-p, 1+p]
  solution, *_ = np.linalg.lstsq(design, targets, rcond=None)
  residual = targets - design @ solution
  return {"intercept": float(solution[0]), "coefficients": solution[1:],
          "noise_std": float(np.sqrt(np.mean(residual ** 2)))}


def companion_matrix(coefficients: np.ndarray) -> np.ndarray:
  """[p, p]: the state (x_t, ..., x_{t-p+1}) maps to (x_{t+1}, ..., x_{t-p+2}) minus c and noise."""
  order = len(coefficients)
  matrix = np.zeros((order, order))
  matrix[0] = coefficients
  matrix[1:, :-1] = np.eye(order - 1)
  return matrix


def spectral_radius(coefficients) -> float:
  """max |eigenvalue| of the companion matrix; the process is stationary iff it is < 1."""
  coefficients = np.asarray(coefficients, np.float64)
  return float(np.max(np.abs(np.linalg.eigvals(companion_matrix(coefficients)))))


def forecast_mean(history: jax.Array, intercept, coefficients: jax.Array,
                  horizon: int) -> jax.Array:
  """m_1..m_H: the recursion with zero noise from history [..., >= p] (oldest first) -> [..., H]."""
  order = coefficients.shape[-1]
  recent_first = jnp.flip(history[..., -order:], axis=-1)  # [..., p]: x_t, x_{t-1}, ...

  def step(lags, _):
    value = intercept + lags @ coefficients  # [...]
    return jnp.concatenate([value[..., None], lags[..., :-1]], axis=-1), value

  _, means = jax.lax.scan(step, recent_first, None, length=horizon)  # [H, ...]
  return jnp.moveaxis(means, 0, -1)


def moving_average_weights(coefficients: jax.Array, horizon: int) -> jax.Array:
  """psi_0..psi_{H-1}: the response of the zero-intercept recursion to a unit shock."""
  order = coefficients.shape[-1]
  shock = jnp.zeros(order).at[-1].set(1.0)  # x_0 = 1 after zeros
  rest = forecast_mean(shock, 0.0, coefficients, horizon - 1) if horizon > 1 else jnp.zeros(0)
  return jnp.concatenate([jnp.ones(1), rest])


def forecast_variance(coefficients: jax.Array, noise_std, horizon: int) -> jax.Array:
  """Var[X_{t+k} | x_{<=t}] = sigma^2 sum_{j<k} psi_j^2 for k = 1..H: [H]."""
  psi = moving_average_weights(coefficients, horizon)
  return jnp.square(noise_std) * jnp.cumsum(jnp.square(psi))


def forecast_interval(mean: jax.Array, variance: jax.Array,
                      interval_level: float) -> tuple[jax.Array, jax.Array]:
  """The central `interval_level` interval of N(mean, variance): mean -+ z sqrt(variance)."""
  z = ndtri(0.5 + 0.5 * interval_level)
  half_width = z * jnp.sqrt(variance)
  return mean - half_width, mean + half_width


def sample_paths(rng: jax.Array, history: jax.Array, intercept, coefficients: jax.Array,
                 noise_std, horizon: int, num: int) -> jax.Array:
  """num simulated continuations [num, H] of history [>= p] (oldest first)."""
  order = coefficients.shape[-1]
  recent_first = jnp.broadcast_to(jnp.flip(history[-order:]), (num, order))
  noise = noise_std * jax.random.normal(rng, (horizon, num))

  def step(lags, shock):
    value = intercept + lags @ coefficients + shock  # [num]
    return jnp.concatenate([value[:, None], lags[:, :-1]], axis=-1), value

  _, paths = jax.lax.scan(step, recent_first, noise)  # [H, num]
  return paths.T
