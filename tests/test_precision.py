"""Memory/precision options of the train step: accumulation, remat and bf16 change only what
they should; a checkpoint saved on 2 devices resumes on 1."""

import chex
import jax
import numpy as np

from conftest import tiny_pixelcnn_config
from gen_jax import parallel, tasks, train


def one_step(config, images, devices=None):
  """(state, metrics) after one train step of `config` on `images`, from a fixed init."""
  task = tasks.create_task(config, train.dataset_spec(config.data))
  mesh = parallel.create_mesh(devices)
  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  batch = parallel.to_global({"image": images}, mesh)
  state = jax.jit(task.init, out_shardings=replicated)(jax.random.PRNGKey(0), batch)
  # Away from init: the zero-initialised head (uniform at the start) would leave the layer
  # below it without a gradient in the first step, and every leaf should move here.
  leaves, treedef = jax.tree.flatten(state.params)
  keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
  state = state.replace(params=jax.tree.unflatten(treedef, [
      leaf + 0.05 * jax.random.normal(key, leaf.shape, leaf.dtype)
      for key, leaf in zip(keys, leaves)]))
  step = jax.jit(task.train_step, in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated))
  initial = jax.device_get(state.params)
  updated, metrics = jax.device_get(step(state, batch, jax.random.PRNGKey(1)))
  assert metrics["learning_rate"] > 0  # a step that changes nothing would prove nothing
  for before, after in zip(jax.tree.leaves(initial), jax.tree.leaves(updated.params)):
    assert not np.array_equal(before, after)
  return updated, metrics


def configured(tiny_idx, **overrides):
  config = tiny_pixelcnn_config(tiny_idx, lr_schedule="constant", warmup_steps=0,
                                grad_clip_norm=0.0)
  with config.unlocked():
    for key, value in overrides.items():
      section, name = key.split(".")
      config[section][name] = value
  return config


IMAGES = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)


def test_gradient_accumulation_equals_the_full_batch_step(tiny_idx):
  full, full_metrics = one_step(configured(tiny_idx), IMAGES)
  accumulated, metrics = one_step(configured(tiny_idx, **{"train.grad_accum_steps": 4}), IMAGES)
  chex.assert_trees_all_close(accumulated.params, full.params, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["loss"], full_metrics["loss"], rtol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm"], full_metrics["grad_norm"], rtol=1e-5)


def test_remat_changes_memory_not_gradients(tiny_idx):
  plain, _ = one_step(configured(tiny_idx), IMAGES)
  remat, _ = one_step(configured(tiny_idx, **{"model.remat": True}), IMAGES)
  chex.assert_trees_all_close(remat.params, plain.params, rtol=1e-6, atol=1e-7)


def test_bfloat16_step_keeps_fp32_params_and_stays_close(tiny_idx):
  fp32, fp32_metrics = one_step(configured(tiny_idx), IMAGES)
  bf16, bf16_metrics = one_step(configured(tiny_idx, **{"train.compute_dtype": "bfloat16"}),
                                IMAGES)
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(bf16.params))
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(bf16.opt_state)
             if np.issubdtype(leaf.dtype, np.floating))
  # bf16 has an 8-bit mantissa: the loss agrees to ~1%, the gradient direction closely.
  np.testing.assert_allclose(bf16_metrics["loss"], fp32_metrics["loss"], rtol=2e-2)
  assert bf16_metrics["loss"] != fp32_metrics["loss"]  # it really computed in bf16
  np.testing.assert_allclose(bf16_metrics["grad_norm"], fp32_metrics["grad_norm"], rtol=5e-2)


def test_checkpoint_saved_on_two_devices_resumes_on_one(tiny_idx, tmp_path):
  assert jax.device_count() >= 2
  config = tiny_pixelcnn_config(tiny_idx, num_steps=4, checkpoint_every=2, eval_every=0,
                                lr_schedule="constant")
  two_devices = parallel.create_mesh(jax.devices()[:2])
  one_device = parallel.create_mesh(jax.devices()[:1])
  train.run(config, str(tmp_path / "straight"), mesh=two_devices)
  with config.unlocked():
    config.train.num_steps = 2
  train.run(config, str(tmp_path / "moved"), mesh=two_devices)
  saved, _ = train.restore_run(config, str(tmp_path / "moved"), mesh=one_device)
  assert {d.id for leaf in jax.tree.leaves(saved) for d in leaf.sharding.device_set} == {
      jax.devices()[0].id}
  with config.unlocked():
    config.train.num_steps = 4
  train.run(config, str(tmp_path / "moved"), mesh=one_device)  # resumes 2 -> 4 on 1 device
  straight, _ = train.restore_run(config, str(tmp_path / "straight"))
  moved, step = train.restore_run(config, str(tmp_path / "moved"))
  assert step == 4
  chex.assert_trees_all_close(moved, straight, rtol=1e-5, atol=1e-6)
