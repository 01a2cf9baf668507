"""Shared test setup: 2 fake CPU devices, tiny generated datasets, small configs."""

import contextlib
import glob
import gzip
import os
import struct
import subprocess
import tempfile

# Two host devices so the sharded path (batch split over 'data') runs in every
# trainer test; set before JAX initialises its backend.
# The tests' programs are tiny, so XLA's compile time, not run time, is most of the
# suite: LLVM at -O0 compiles about twice as fast (the 2 test files timed with a cold
# cache: 119 -> 70 CPU s). It changes no floating-point semantics (no fast-math either
# way), and every test and the CLI runs it starts see the same flags.
FAST_COMPILE = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count=2 {FAST_COMPILE}").strip()

# One XLA compilation cache for the session, shared by xdist workers and the CLI runs
# that tests start: a step that several tests build (a smoke config's, say) compiles
# once. The cache is keyed by the program and the compiler, so it changes no result.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "gen_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes uint8 `array` as a gzipped IDX file (magic 0x08 type, ndim)."""
  header = struct.pack(">i", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def make_idx_dir(directory: str, num_train: int = 96, num_test: int = 40, seed: int = 0):
  """A tiny MNIST-format directory; returns the arrays written, by split."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  written = {}
  for split, prefix, num in (("train", "train", num_train), ("test", "t10k", num_test)):
    # Smooth-ish images (a blurred random field) so a model has something to learn.
    images = rng.integers(0, 256, (num, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, (num,)).astype(np.uint8)
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    written[split] = (images, labels)
  return written


@pytest.fixture(scope="session")
def tiny_idx(tmp_path_factory):
  """(idx_dir, tfds_data_dir, arrays) of a tiny Fashion-MNIST-format dataset."""
  root = tmp_path_factory.mktemp("tiny_data")
  arrays = make_idx_dir(str(root / "idx"))
  return str(root / "idx"), str(root / "tfds"), arrays


def load_config(filename: str, arg: str | None = None):
  """configs/<filename>'s get_config(arg), loaded by path as config_flags does."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "config_" + filename.replace(".py", ""), os.path.join(REPO, "configs", filename))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def tiny_pixelcnn_config(tiny_idx, **train_overrides):
  """configs/pixelcnn.py:smoke on the tiny dataset, with an even tinier model."""
  config = load_config("pixelcnn.py", "smoke")
  idx_dir, data_dir, _ = tiny_idx
  with config.unlocked():
    config.data.idx_dir, config.data.data_dir = idx_dir, data_dir
    config.data.max_eval_examples = 0
    config.model.features, config.model.head_features, config.model.num_blocks = 8, 8, 1
    config.model.first_kernel_size = 3
    config.train.eval_batch_size = 16
    config.train.progress_bar = False
    for key, value in train_overrides.items():
      config.train[key] = value
  return config


def smoke_config(filename: str, arg: str, tiny_idx):
  """configs/<filename>:<arg> on the tiny dataset, 4 steps, one checkpoint at the end."""
  config = load_config(filename, arg)
  idx_dir, data_dir, _ = tiny_idx
  with config.unlocked():
    config.data.idx_dir, config.data.data_dir = idx_dir, data_dir
    config.train.num_steps, config.train.checkpoint_every = 4, 4
    config.train.eval_batch_size, config.train.progress_bar = 16, False
  return config


def prerequisites(config) -> dict[str, str]:
  """{dotted key: config file} of the runs a config builds on.

  A config that needs another trained run (a VQ prior needs its VQ-VAE) names
  it in a `<name>_workdir` key, top-level or in config.data, with the config
  file that run comes from in `<name>_config` beside it (e.g. vqvae_workdir /
  vqvae_config = "vqvae.py"; M1+M2's data.m1_workdir / data.m1_config, which only
  the m1m2 variants set: M2 alone leaves data.m1_workdir unset).
  """
  found = {}
  for prefix, block in (("", config), ("data.", config.data)):
    for key in block.keys():
      stem = key[:-len("_workdir")]
      if key.endswith("_workdir") and block.get(stem + "_config"):  # "": optional, unset
        found[prefix + key] = block[stem + "_config"]
  return found


def provide_prerequisites(config, run) -> None:
  """Sets each prerequisite key of `config` (unlocked) to run(its config file)'s workdir."""
  for key, prerequisite in prerequisites(config).items():
    *parents, name = key.split(".")
    block = config
    for parent in parents:
      block = block[parent]
    block[name] = run(prerequisite)[0]


@pytest.fixture(scope="session")
def smoke_run(tiny_idx, tmp_path_factory):
  """(filename, arg='smoke') -> (workdir, results) of that config's smoke run on the tiny data.

  Each run happens once a session, on first request; a config's prerequisites
  (see `prerequisites`) are their own configs' smoke runs.
  """
  from gen_jax import train
  runs = {}

  def run(filename: str, arg: str = "smoke"):
    if (filename, arg) not in runs:
      config = smoke_config(filename, arg, tiny_idx)
      with config.unlocked():
        provide_prerequisites(config, run)
      workdir = str(tmp_path_factory.mktemp(f"{filename[:-3]}_{arg}"))
      runs[filename, arg] = workdir, train.run(config, workdir)
    return runs[filename, arg]

  return run


class ImageRecorder:
  """A metric writer stand-in that keeps the image grids it is given."""

  def __init__(self):
    self.images = {}

  def write_images(self, step, name, images, num_columns=None):
    self.images[name] = np.asarray(images)
    return name


@contextlib.contextmanager
def read_only(path):
  """`path` read-only: a read-only bind mount as root (permissions do not stop root), else
  chmod; skips the test where neither is possible."""
  if os.geteuid() != 0:
    modes = {p: os.stat(p).st_mode for p in [path, *glob.glob(f"{path}/**", recursive=True)]}
    for p in modes:
      os.chmod(p, modes[p] & ~0o222)
    try:
      yield
    finally:
      for p, mode in modes.items():
        os.chmod(p, mode)
    return
  mounted = subprocess.run(["mount", "--bind", path, path], capture_output=True).returncode == 0
  if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", path],
                                   capture_output=True).returncode:
    if mounted:
      subprocess.run(["umount", path], check=True)
    pytest.skip("cannot make a read-only directory here")
  try:
    yield
  finally:
    subprocess.run(["umount", path], check=True)
