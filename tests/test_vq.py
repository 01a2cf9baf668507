"""The VQ tasks: stage 1's codebook updates and eval, stage 2 on stage 1's checkpoint."""

import copy
import functools
import glob
import json
import os
import struct

import chex
import jax
import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto import event_pb2

from conftest import smoke_config
from gen_jax import parallel, tasks, train
from gen_jax.errors import UserError
from gen_jax.tasks import vq as vq_task
from gen_jax.tasks import vq_prior


def vq_config(tiny_idx, filename="vqvae2.py", **model_overrides):
  config = smoke_config(filename, "smoke", tiny_idx)
  with config.unlocked():
    for key, value in model_overrides.items():
      config.model[key] = value
  return config


def create(config, devices=None):
  """(task, traces, jit'd train step, state, batch): the tiny data's first 16 images;
  `traces` grows by one each time the step is traced."""
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  mesh = parallel.create_mesh(devices)
  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  train_split, _ = train.data.load_splits(config.data)
  batch = parallel.to_global({"image": train_split.images[:16]}, mesh)
  state = jax.jit(task.init, out_shardings=replicated)(jax.random.PRNGKey(0), batch)
  traces = []

  def traced_step(*args):
    traces.append(1)
    return task.train_step(*args)

  step = jax.jit(traced_step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated))
  return task, traces, step, state, batch


def run_steps(config, devices, num_steps: int = 3):
  """(states [init, after step 0, ...], metrics by step, traces) of a run on one batch."""
  _, traces, step, state, batch = create(config, devices)
  states, history = [jax.device_get(state)], []
  for _ in range(num_steps):
    state, metrics = step(state, batch, jax.random.PRNGKey(1))
    states.append(jax.device_get(state))
    history.append(jax.device_get(metrics))
  return states, history, traces


@pytest.fixture(scope="module")
def one_device_run(tiny_idx):
  """3 steps of vqvae:smoke on one device: k-means at step 0, then EMA and restarts.

  A fast-moving count (decay 0.5) and a high bar (half the uniform share) make codes
  die within 3 steps. No code can die before step 2: after step 0 (k-means) every
  count is the uniform share u, after step 1 it is at least 0.5 u, the bar.
  """
  config = vq_config(tiny_idx, "vqvae.py", codebook_decay=0.5, dead_code_fraction=0.5)
  return (config, *run_steps(config, jax.devices()[:1]))


def test_train_step_with_ema_kmeans_and_restarts_is_the_same_on_one_and_two_devices(
    one_device_run):
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  config, states, history, traces = one_device_run
  assert len(traces) == 1  # one compiled step (k-means and restarts are inside it)
  assert sum(metrics["restarted_codes"] for metrics in history) > 0  # the restart path ran
  two_states, two_history, _ = run_steps(config, jax.devices()[:2])
  chex.assert_trees_all_close((states, history), (two_states, two_history), rtol=1e-4, atol=1e-5)


def test_accumulated_step_equals_the_whole_batch_step(one_device_run):
  """train.grad_accum_steps=2 (on 2 devices): the same params, Adam state and codebook
  statistics as one whole-batch step, k-means and restarts included: the micro-batches'
  encoder outputs reach the codebook update as one batch, in its row order."""
  config, states, history, _ = one_device_run
  config = copy.deepcopy(config)
  with config.unlocked():
    config.train.grad_accum_steps = 2
  accumulated, accumulated_history, traces = run_steps(config, jax.devices()[:2])
  assert len(traces) == 1
  assert sum(metrics["restarted_codes"] for metrics in history) > 0  # the restart path ran
  model = lambda state: state.params["model"]  # noqa: E731
  assert not np.allclose(*(jax.tree.leaves(model(states[0]))[0],
                           jax.tree.leaves(model(states[-1]))[0]))  # Adam moved the model
  chex.assert_trees_all_close((accumulated, accumulated_history), (states, history),
                              rtol=1e-4, atol=1e-5)


def test_bfloat16_step_keeps_fp32_state_and_stays_close(tiny_idx):
  """VQ-VAE-2 with train.compute_dtype=bfloat16: params, Adam state and codebook statistics
  stay float32, and the step's losses agree with the float32 step's to bf16 precision."""
  config = vq_config(tiny_idx, "vqvae2.py")
  (_, fp32), (fp32_metrics,), _ = run_steps(config, jax.devices()[:1], num_steps=1)
  with config.unlocked():
    config.train.compute_dtype = "bfloat16"
  (_, bf16), (bf16_metrics,), _ = run_steps(config, jax.devices()[:1], num_steps=1)
  floating = [leaf for leaf in jax.tree.leaves((bf16.params, bf16.opt_state, bf16.aux))
              if np.issubdtype(leaf.dtype, np.floating)]
  assert floating and all(leaf.dtype == np.float32 for leaf in floating)
  assert bf16_metrics["loss"] != fp32_metrics["loss"]  # it really computed in bf16
  for name in ("loss", "reconstruction_mse"):
    np.testing.assert_allclose(bf16_metrics[name], fp32_metrics[name], rtol=3e-2)
  np.testing.assert_allclose(bf16.aux["reconstruction_variance"],
                             fp32.aux["reconstruction_variance"], rtol=3e-2)


def test_ema_codebook_follows_the_assigned_encoder_outputs_not_the_optimizer(one_device_run):
  """Step 1 against an independent numpy EMA of the batch's nearest-code assignments."""
  config, states, history, _ = one_device_run
  assert history[1]["restarted_codes"] == 0  # step 1: the EMA alone (see one_device_run)
  state, new_state = states[1], states[2]
  spec = train.dataset_spec(config.data)
  _, apply_fn, scales, _ = vq_task.create_vq_model(config.model, spec)
  settings = vq_task.create_vq_settings(config.model, spec, scales)
  train_split, _ = train.data.load_splits(config.data)
  _, latents, _, _ = jax.jit(functools.partial(vq_task.autoencode, apply_fn=apply_fn,
                                                settings=settings))(state.params,
                                                                    train_split.images[:16])
  codebook = np.asarray(state.params["codebooks"]["latent"])
  z = np.asarray(latents["latent"]).reshape(-1, codebook.shape[1])
  codes = np.linalg.norm(z[:, None] - codebook, axis=-1).argmin(-1)
  counts = np.bincount(codes, minlength=len(codebook))
  sums = np.stack([z[codes == k].sum(0) for k in range(len(codebook))])
  size = 0.5 * np.asarray(state.aux["cluster_size"]["latent"]) + 0.5 * counts
  total = 0.5 * np.asarray(state.aux["cluster_sum"]["latent"]) + 0.5 * sums
  smoothed = (size + 1e-5) / (size.sum() + len(size) * 1e-5) * size.sum()
  np.testing.assert_allclose(new_state.aux["cluster_size"]["latent"], size, rtol=1e-5)
  # e = m / N: the optimizer left the codebook alone (its gradient step is masked out)
  np.testing.assert_allclose(new_state.params["codebooks"]["latent"], total / smoothed[:, None],
                             rtol=1e-4, atol=1e-5)


def test_codebook_loss_moves_only_the_codes_in_use(tiny_idx):
  config = vq_config(tiny_idx, "vqvae.py", codebook_update="loss", kmeans_init=False,
                     restart_dead_codes=False, codebook_size=64)
  _, _, step, state, batch = create(config)
  state, _ = step(state, batch, jax.random.PRNGKey(1))  # learning rate 0 (warmup): no move
  new_state, _ = step(state, batch, jax.random.PRNGKey(1))
  moved = np.abs(np.asarray(new_state.params["codebooks"]["latent"]
                            - state.params["codebooks"]["latent"])).max(-1) > 0
  # the running counts grew exactly for the codes this batch used
  counts = (np.asarray(new_state.aux["cluster_size"]["latent"])
            - 0.99 * np.asarray(state.aux["cluster_size"]["latent"]))
  used = counts > 1e-6
  assert 0 < used.sum() < 64
  np.testing.assert_array_equal(moved, used)  # Adam moves exactly the codes with a gradient


def read_histograms(workdir: str, tag: str) -> list:
  """The HistogramProtos logged under `tag` in a run's TensorBoard event files."""
  histograms = []
  for path in glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*")):
    with open(path, "rb") as f:
      content = f.read()
    position = 0
    while position < len(content):  # TFRecord: length, crc, data, crc
      (length,) = struct.unpack("<Q", content[position:position + 8])
      event = event_pb2.Event.FromString(content[position + 12:position + 12 + length])
      position += 16 + length
      histograms += [value.histo for value in event.summary.value if value.tag == tag]
  return histograms


def test_eval_reports_codebook_health_of_the_whole_split_and_a_usage_histogram(smoke_run, tiny_idx):
  workdir, results = smoke_run("vqvae.py")
  config = smoke_config("vqvae.py", "smoke", tiny_idx)
  state, _ = train.restore_run(config, workdir)
  spec = train.dataset_spec(config.data)
  _, apply_fn, scales, _ = vq_task.create_vq_model(config.model, spec)
  settings = vq_task.create_vq_settings(config.model, spec, scales)
  _, eval_split = train.data.load_splits(config.data)
  _, latents, _, _ = jax.jit(functools.partial(vq_task.autoencode, apply_fn=apply_fn,
                                                settings=settings))(state.params, eval_split.images)
  codebook = np.asarray(state.params["codebooks"]["latent"])
  z = np.asarray(latents["latent"]).reshape(-1, codebook.shape[1])
  counts = np.bincount(np.linalg.norm(z[:, None] - codebook, axis=-1).argmin(-1),
                       minlength=len(codebook))
  (histogram,) = read_histograms(workdir, "eval/code_usage")
  np.testing.assert_array_equal(histogram.bucket, counts)
  assert histogram.num == len(eval_split) * 49  # every position of every eval image
  probs = counts / counts.sum()
  perplexity = np.exp(-np.sum(probs[probs > 0] * np.log(probs[probs > 0])))
  np.testing.assert_allclose(results["eval"]["codebook_perplexity"], perplexity, rtol=1e-5)
  assert results["eval"]["dead_codes"] == np.sum(counts == 0)


def prior_config(tiny_idx, stage1_workdir, filename="vqvae2_prior.py"):
  config = smoke_config(filename, "smoke", tiny_idx)
  with config.unlocked():
    config.vqvae_workdir = stage1_workdir
  return config


def test_stage2_reads_stage1_and_decodes_sampled_codes(smoke_run, tiny_idx, monkeypatch):
  stage1_dir, _ = smoke_run("vqvae2.py")
  prior_dir, _ = smoke_run("vqvae2_prior.py")  # trained 4 steps on the codes of stage1_dir
  config = prior_config(tiny_idx, stage1_dir)
  state, _ = train.restore_run(config, prior_dir)
  stage1_config = vq_prior.read_vqvae_config(stage1_dir)
  stage1, _ = train.restore_run(stage1_config, stage1_dir)
  # The prior's state carries stage 1's parameters, restored from its checkpoint.
  chex.assert_trees_all_equal(jax.device_get(state.params["vqvae"]), jax.device_get(stage1.params))

  # The codes it trained on are the nearest codes of stage 1's encoder outputs, read from
  # the cache in the stage-1 workdir (not extracted again).
  assert glob.glob(os.path.join(stage1_dir, "codes", "*.npz"))
  monkeypatch.setattr(vq_prior, "extract_codes", lambda *a, **k: pytest.fail("re-extracted"))
  _, eval_codes = vq_prior.load_codes(config.data)
  image_spec = vq_prior.image_spec(stage1_config)
  _, apply_fn, scales, _ = vq_task.create_vq_model(stage1_config.model, image_spec)
  settings = vq_task.create_vq_settings(stage1_config.model, image_spec, scales)
  _, eval_images = train.data.load_splits(vq_prior.image_data_config(stage1_config, config.data))
  mean, latents, _, _ = jax.jit(functools.partial(vq_task.autoencode, apply_fn=apply_fn,
                                                   settings=settings))(stage1.params,
                                                                       eval_images.images)
  for scale in scales:
    codebook = np.asarray(stage1.params["codebooks"][scale])
    z = np.asarray(latents[scale])
    nearest = np.linalg.norm(z[..., None, :] - codebook, axis=-1).argmin(-1)
    np.testing.assert_array_equal(eval_codes[f"codes_{scale}"], nearest)
  # Decoding codes through stage 2 gives stage 1's reconstructions.
  codes = {scale: eval_codes[f"codes_{scale}"] for scale in scales}
  decoded = jax.jit(functools.partial(vq_task.decode_codes, apply_fn=apply_fn, num_levels=256))(
      state.params["vqvae"], codes)
  np.testing.assert_array_equal(decoded, np.clip(np.round((np.asarray(mean) + 1) * 127.5), 0, 255))
  # Shown as 8-bit images whatever the levels: a binarized stage 1's 0 / 1 are 0 / 255.
  binary = jax.jit(functools.partial(vq_task.decode_codes, apply_fn=apply_fn, num_levels=2))(
      state.params["vqvae"], codes)
  np.testing.assert_array_equal(binary, 255 * (np.asarray(mean) > 0))
  # The smoke run's samples: 4 sampled code pairs decoded to 28x28 grey images, a 2x2 grid.
  grid = Image.open(os.path.join(prior_dir, "samples", "step_4.png"))
  assert grid.mode == "L" and grid.size == (2 * 29 + 1, 2 * 29 + 1)


def test_a_missing_or_incompatible_stage1_is_a_clear_error(smoke_run, tiny_idx, tmp_path):
  vqvae_dir, _ = smoke_run("vqvae.py")
  vqvae2_dir, _ = smoke_run("vqvae2.py")
  not_vq = tmp_path / "pixelcnn_run"
  not_vq.mkdir()
  (not_vq / "config.json").write_text(json.dumps({"model": {"name": "pixelcnn"}}))
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  with open(os.path.join(vqvae2_dir, "config.json")) as f:
    (untrained / "config.json").write_text(f.read())
  cases = [("", "config.vqvae_workdir is not set"),
           (str(tmp_path / "nowhere"), "holds no stage-1 run"),
           (str(not_vq), "holds a 'pixelcnn' run, not a VQ-VAE"),
           (str(untrained), "has no checkpoint yet"),
           (vqvae_dir, "holds a 'vqvae' run; vqvae2_prior needs a 'vqvae2' run")]
  for workdir, message in cases:
    with pytest.raises(UserError, match=message):
      train.run(prior_config(tiny_idx, workdir), str(tmp_path / "prior"))


@pytest.mark.parametrize("filename", ["vqvae.py", "vqvae2.py"])
def test_every_model_parameter_is_trained(tiny_idx, filename):
  """No dead parameters: three train steps move every leaf of the encoder/decoder (one the
  loss never reads, like a declared log-scale, stays put). Step 0's learning rate is 0
  (warmup); step 1 moves the zero-initialised last decoder layer, step 2 the rest."""
  _, _, step, state, batch = create(vq_config(tiny_idx, filename), jax.devices()[:1])
  before = jax.device_get(state.params["model"])
  for _ in range(3):
    state, _ = step(state, batch, jax.random.PRNGKey(1))
  after = jax.device_get(state.params["model"])
  unchanged = [jax.tree_util.keystr(path) for path, old, new in zip(
      *zip(*jax.tree_util.tree_flatten_with_path(before)[0]),
      jax.tree.leaves(after)) if np.array_equal(old, new)]
  assert not unchanged, unchanged
