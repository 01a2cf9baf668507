"""The PyTorch peer models of `gen_jax.bench --reference torch` (benchmarks/pytorch_peer.py):
the same sizes as pytorch-generative's defaults and as gen_jax's `:peer` configs, and causal.
Skipped where PyTorch is not installed (it is optional: `make torch`)."""

import jax
import numpy as np
import pytest

from gen_jax import tasks, train
from tests.conftest import load_config

torch = pytest.importorskip("torch")
from benchmarks import pytorch_peer  # noqa: E402


def gen_jax_num_params(config) -> int:
  task = tasks.create_task(config, train.dataset_spec(config.data))
  state = jax.eval_shape(task.init, jax.random.PRNGKey(0), None)
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(state.params)))


def test_peer_pixelcnn_sizes_match_its_defaults_and_gen_jax():
  config = load_config("pixelcnn.py", "peer")
  peer = pytorch_peer.build("pixelcnn", config.model)
  # pytorch-generative's PixelCNN(n_residual=15, residual_channels=128, head_channels=32)
  # with 256 outputs: 7x7 input conv, 15 x (1x1, 3x3, 1x1), two 1x1 head convs.
  blocks = 15 * ((256 * 128 + 128) + (9 * 128 * 128 + 128) + (128 * 256 + 256))
  expected = (49 * 256 + 256) + blocks + (256 * 32 + 32) + (32 * 256 + 256)
  assert pytorch_peer.count_parameters(peer) == expected == 3_232_032
  # The taps its masks keep are exactly the kernels gen_jax's cropped convolutions hold.
  assert pytorch_peer.count_live_parameters(peer) == gen_jax_num_params(config) == 2_242_592


def test_peer_gated_pixelcnn_sizes_match_gen_jax_peer_config():
  config = load_config("gated_pixelcnn.py", "peer")
  peer = pytorch_peer.build("gated_pixelcnn", config.model)
  peer_params = pytorch_peer.count_parameters(peer)
  assert peer_params == 3_372_576  # pytorch-generative's GatedPixelCNN() with 256 outputs
  assert abs(gen_jax_num_params(config) - peer_params) / peer_params < 2e-4


@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn"])
def test_peer_output_ignores_the_present_and_later_pixels(name):
  """Changing pixel (i, j) changes no logit at a pixel before or at (i, j) in raster order."""
  torch.manual_seed(0)
  if name == "pixelcnn":
    model = pytorch_peer.PeerPixelCNN(num_residual=2, residual_channels=4, head_channels=4)
  else:
    model = pytorch_peer.PeerGatedPixelCNN(num_gated=2, channels=4, head_channels=4)
  images = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
  with torch.no_grad():
    before = model(images)
    for row, column in [(0, 0), (3, 4), (5, 0), (7, 7)]:
      changed = images.clone()
      changed[0, 0, row, column] = 255 - changed[0, 0, row, column]
      difference = (model(changed) - before).abs().amax(dim=(0, 1)).flatten()  # [H * W]
      position = row * 8 + column
      assert difference[:position + 1].max() == 0.0
      if position < 63:
        assert difference[position + 1:].max() > 0.0  # the next pixels do see it


def test_bench_against_peer_reports_both_sides_of_one_model():
  """`bench --reference torch` on a tiny PixelCNN: both stepped, same live parameters, and
  the peer executes more FLOPs (its masks multiply zeros that gen_jax's kernels drop)."""
  from benchmarks import against_torch
  from gen_jax import bench
  config = load_config("pixelcnn.py", "smoke")
  with config.unlocked():
    config.train.batch_size = 4
  result = against_torch.measure_against_peer(config, bench.compile_train_step(config), rounds=1,
                                              steps_per_round=1, threads=1)
  assert result["num_params"] == result["reference_num_live_params"]
  assert result["reference_num_params"] > result["num_params"]
  assert 0 < result["gflop_per_step"] < result["reference_gflop_per_step"]
  assert result["step_ms_median"] > 0 and result["reference_step_ms_median"] > 0
  assert result["speedup_vs_reference"] == pytest.approx(
      result["reference_step_ms_median"] / result["step_ms_median"])


def test_peer_ops_time_the_same_operation_in_both_frameworks():
  """benchmarks/peer_ops.py: each XLA op (gen_jax's [2, 3] causal convolution, 1x1 layers as
  matmuls) and its PyTorch counterpart (the peer's masked 3x3, 1x1 convolutions in NCHW)
  compute the same values from the same inputs, so the op timings compare equal work."""
  from benchmarks import peer_ops
  arrays = peer_ops.make_arrays(batch=2)
  xla, peer = peer_ops.xla_ops(arrays), peer_ops.torch_ops(arrays, threads=1)
  assert xla.keys() == peer.keys()
  for name, (fn, args) in xla.items():
    ours = np.asarray(fn(*args))
    theirs = peer[name][0]().numpy()
    if name == "conv3x3 kernel grad":  # [Cout, Cin, 3, 3]: the peer's 9 taps, gen_jax's 6
      assert np.abs(theirs[:, :, 2]).max() > 0  # the peer computes the masked row's too
      theirs = theirs.transpose(2, 3, 1, 0)[:2]
    elif "kernel grad" in name:  # [Cout, Cin, 1, 1] -> [Cin, Cout]
      theirs = theirs[:, :, 0, 0].T
    elif ours.ndim == 4:  # NHWC against NCHW
      theirs = theirs.transpose(0, 2, 3, 1)
    else:  # [N, C] rows against NCHW images
      theirs = theirs.transpose(0, 2, 3, 1).reshape(ours.shape)
    np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-3, err_msg=name)
