"""Small line plots drawn with Pillow (no plotting library): forecasts with bands."""

import numpy as np
from PIL import Image, ImageDraw

BAND, PATH, MEAN = (200, 215, 240), (175, 175, 205), (30, 80, 200)
OBSERVED, HELD_OUT, AXIS = (0, 0, 0), (200, 40, 40), (150, 150, 150)


def forecast_plot(history: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  *, future: np.ndarray | None = None, paths: np.ndarray | None = None,
                  title: str = "", size: tuple[int, int] = (640, 300)) -> np.ndarray:
  """An RGB uint8 [height, width, 3] plot of a forecast from the end of `history`.

  history [n] is drawn at times -n..-1 (black); the forecast for times 0..H-1
  as its interval band (light blue), sampled `paths` [k, H] (grey), its mean
  (blue) and, when given, the values that really followed, `future` [<= H] (red).
  """
  width, height = size
  left, right, top, bottom = 56, 10, 22, 10
  horizon = len(mean)
  curves = [history, mean, lower, upper] + ([future] if future is not None else [])
  if paths is not None and len(paths):
    curves.append(np.ravel(paths))
  low, high = (float(f(np.concatenate([np.ravel(c) for c in curves]))) for f in (np.min, np.max))
  pad = 0.05 * (high - low) or 1.0
  low, high = low - pad, high + pad
  first = -len(history)
  span = max(horizon - 1 - first, 1)

  def point(t, value):
    return (left + (t - first) / span * (width - left - right),
            top + (high - value) / (high - low) * (height - top - bottom))

  def polyline(times, values):
    return [point(t, v) for t, v in zip(times, np.asarray(values, np.float64))]

  image = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(image)
  times = np.arange(horizon)
  draw.polygon(polyline(times, upper) + polyline(times[::-1], lower[::-1]), fill=BAND)
  draw.line([point(-0.5, high), point(-0.5, low)], fill=AXIS)
  draw.line([(left, top), (left, height - bottom)], fill=AXIS)
  for path in ([] if paths is None else paths):
    draw.line(polyline(times, path), fill=PATH)
  draw.line(polyline(np.arange(first, 0), history), fill=OBSERVED, width=2)
  if future is not None and len(future):
    draw.line(polyline(times[:len(future)], future), fill=HELD_OUT, width=2)
  draw.line(polyline(times, mean), fill=MEAN, width=2)
  for value in (low + pad, high - pad):
    x, y = point(first, value)
    draw.text((4, y - 6), f"{value:.3g}", fill=OBSERVED)
    draw.line([(x - 4, y), (x, y)], fill=AXIS)
  draw.text((left, 4), title, fill=OBSERVED)
  return np.asarray(image)
