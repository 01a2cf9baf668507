"""Small plots drawn with Pillow (no plotting library): forecasts with bands, histograms,
learning curves, and sample grids enlarged for a page."""

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


SET_COLOURS = ((30, 80, 200), (200, 40, 40), (40, 150, 60), (230, 140, 0), (140, 60, 180),
               (0, 160, 170), (120, 120, 120), (190, 90, 140))


def histogram_plot(values_by_name: dict[str, np.ndarray], *, title: str = "",
                   num_bins: int = 40, size: tuple[int, int] = (640, 240)) -> np.ndarray:
  """An RGB uint8 [height, width, 3] plot of one step histogram per named set of values,
  on shared bins over the 1st..99th percentile of all values (values beyond it counted in
  the end bins), each normalised to its own count, with the names as a legend in their
  colours and the range's ends on the axis."""
  width, height = size
  left, right, top, bottom = 10, 10, 22, 18
  pooled = np.concatenate([np.ravel(v) for v in values_by_name.values()]).astype(np.float64)
  low, high = (float(q) for q in np.percentile(pooled, [1.0, 99.0]))
  high = high if high > low else low + 1.0
  edges = np.linspace(low, high, num_bins + 1)
  densities = {name: np.histogram(np.clip(np.ravel(v), low, high), edges)[0]
               / max(len(np.ravel(v)), 1) for name, v in values_by_name.items()}
  peak = max(float(d.max()) for d in densities.values()) or 1.0
  image = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(image)
  bin_width = (width - left - right) / num_bins
  base = height - bottom
  for index, (name, density) in enumerate(densities.items()):
    colour = SET_COLOURS[index % len(SET_COLOURS)]
    points = []
    for bin_index, value in enumerate(density):
      y = base - value / peak * (base - top)
      points += [(left + bin_index * bin_width, y), (left + (bin_index + 1) * bin_width, y)]
    draw.line(points, fill=colour, width=2)
    draw.text((width - right - 110, top + 12 * index), name, fill=colour)
  draw.line([(left, base), (width - right, base)], fill=AXIS)
  draw.text((left, base + 3), f"{low:.3g}", fill=OBSERVED)
  draw.text((width - right - 40, base + 3), f"{high:.3g}", fill=OBSERVED)
  draw.text((left, 4), title, fill=OBSERVED)
  return np.asarray(image)


def seed_mean(curves: list[list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray] | None:
  """The mean over seeds of (x, y) curves at their shared leading points (None: no points)."""
  curves = [curve for curve in curves if curve]
  if not curves:
    return None
  length = min(map(len, curves))
  points = np.array([curve[:length] for curve in curves], np.float64)  # [seeds, n, 2]
  return points[..., 0].mean(0), points[..., 1].mean(0)


def curves_plot(lines: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str = "",
                size: tuple[int, int] = (640, 320)) -> np.ndarray:
  """An RGB uint8 [height, width, 3] plot of one curve (x [n], y [n]) per name on shared
  axes, the names as a legend in their colours and both axes' ranges written at their ends.
  The image widens past size[0] when a legend name is longer than its 130-pixel column."""
  legend = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name) for name in lines)
  left, right, top, bottom = 56, max(130, int(legend) + 16), 22, 18
  width, height = size[0] + right - 130, size[1]
  xs = np.concatenate([np.asarray(x, np.float64) for x, _ in lines.values()])
  ys = np.concatenate([np.asarray(y, np.float64) for _, y in lines.values()])
  x_low, x_high = float(xs.min()), float(xs.max())
  y_low, y_high = float(ys.min()), float(ys.max())
  x_high = x_high if x_high > x_low else x_low + 1.0
  pad = 0.05 * (y_high - y_low) or 1.0
  y_low, y_high = y_low - pad, y_high + pad

  def point(x, y):
    return (left + (x - x_low) / (x_high - x_low) * (width - left - right),
            top + (y_high - y) / (y_high - y_low) * (height - top - bottom))

  image = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(image)
  draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill=AXIS)
  for index, (name, (x, y)) in enumerate(lines.items()):
    colour = SET_COLOURS[index % len(SET_COLOURS)]
    points = [point(a, b) for a, b in zip(np.asarray(x, np.float64), np.asarray(y, np.float64))]
    if len(points) > 1:
      draw.line(points, fill=colour, width=2)
    for px, py in points:
      draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
    draw.text((width - right + 8, top + 12 * index), name, fill=colour)
  for value in (y_low + pad, y_high - pad):
    draw.text((4, point(x_low, value)[1] - 6), f"{value:.4g}", fill=OBSERVED)
  draw.text((left, height - bottom + 3), f"{x_low:.4g}", fill=OBSERVED)
  draw.text((width - right - 40, height - bottom + 3), f"{x_high:.4g}", fill=OBSERVED)
  draw.text((left, 4), title, fill=OBSERVED)
  return np.asarray(image)


def upscale_with_border(image: np.ndarray, scale: int, border: int,
                        colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
  """image [H, W, 3] uint8 enlarged `scale` times (each pixel a scale x scale block, no
  smoothing) inside a `border`-pixel frame: [H * scale + 2 border, W * scale + 2 border, 3]."""
  enlarged = np.repeat(np.repeat(np.asarray(image), scale, axis=0), scale, axis=1)
  framed = np.empty((enlarged.shape[0] + 2 * border, enlarged.shape[1] + 2 * border, 3),
                    np.uint8)
  framed[...] = colour
  framed[border:border + enlarged.shape[0], border:border + enlarged.shape[1]] = enlarged
  return framed
