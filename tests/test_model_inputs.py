"""Every path where a model reads data sees what training saw (data.model_inputs):
a binarized model is never fed 0..255 pixels outside training and eval either."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ImageRecorder, load_config, smoke_config, tiny_pixelcnn_config
from gen_jax import data, parallel, runs, tasks
from gen_jax.applications import completion, latent_space
from gen_jax.data import pipeline
from gen_jax.errors import UserError
from gen_jax.tasks import beta_vae as beta_vae_task
from gen_jax.tasks import vq as vq_task


def init_task(config):
  spec = runs.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  mesh = parallel.create_mesh(jax.devices()[:1])
  train_split, eval_split = data.load_splits(config.data)
  batch = runs.example_batch(config, spec, mesh)
  return spec, task, task.init(jax.random.PRNGKey(0), batch), eval_split


def test_model_inputs_is_the_training_preprocessing():
  images = np.random.default_rng(0).integers(0, 256, (6, 4, 4, 1)).astype(np.uint8)
  np.testing.assert_array_equal(data.model_inputs(images, "fixed", 0), images >= 128)
  np.testing.assert_array_equal(data.model_inputs(images, "none", 0), images)
  split = data.image_split(images)
  batch = data.TrainBatches(split, global_batch_size=6, seed=3, binarization="dynamic")(0)
  order = np.random.default_rng([3, 0]).permutation(6)
  np.testing.assert_array_equal(
      batch["image"], data.model_inputs(images[order], "dynamic", 3, 0, 0, 1))


def test_a_binarized_pixelcnn_completes_the_binarized_image(tiny_idx):
  config = tiny_pixelcnn_config(tiny_idx)
  with config.unlocked():
    config.data.binarization = "fixed"
  spec, task, state, eval_split = init_task(config)
  writer = ImageRecorder()
  run = runs.Run("", config, spec, task, state, 0, parallel.create_mesh(jax.devices()[:1]))
  completions = completion.write_completions(run, jax.random.PRNGKey(1), 3, writer)
  binarized = (eval_split.images[:3] >= 128).astype(np.uint8)
  start = 14 * 28
  assert set(np.unique(completions)) <= {0, 1}
  np.testing.assert_array_equal(completions.reshape(3, -1)[:, :start],
                                binarized.reshape(3, -1)[:, :start])  # the observed half
  grid = writer.images["completion"]  # originals, observed, completions: shown as 0 / 255
  np.testing.assert_array_equal(grid[:3], 255 * binarized)
  np.testing.assert_array_equal(grid[6:], 255 * completions)


def perturbed(params, scale=0.5):
  """params + scale * N(0, 1) noise on every float leaf (a zero-initialized head moves)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(9), len(leaves))
  return jax.tree.unflatten(tree, [
      leaf + scale * jax.random.normal(key, leaf.shape, leaf.dtype)
      if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf for leaf, key in zip(leaves, keys)])


@pytest.mark.parametrize("filename", ["pixelcnn.py", "vqvae.py"])
def test_a_binarized_models_samples_are_8_bit_images_like_its_decodes(tiny_idx, filename):
  # Every sampler returns 8-bit images (the writers save them as they are): a binarized
  # model's levels 0 / 1 come out as 0 / 255, as the decode hooks return them.
  config = (tiny_pixelcnn_config(tiny_idx) if filename == "pixelcnn.py"
            else smoke_config(filename, "smoke", tiny_idx))
  with config.unlocked():
    config.data.binarization = "fixed"
  spec, task, state, _ = init_task(config)
  state = state.replace(params=perturbed(state.params))
  rng = jax.random.PRNGKey(2)
  samples = np.asarray(jax.jit(task.sample, static_argnums=2)(state, rng, 4))
  assert samples.dtype == np.uint8 and set(np.unique(samples)) == {0, 255}
  if filename == "vqvae.py":  # the sampler is decode of codes drawn from their frequencies
    _, _, scales, latent_shapes = vq_task.create_vq_model(config.model, spec)
    codes = vq_task.sample_codes(state, rng, 4, scales=scales, latent_shapes=latent_shapes)
    np.testing.assert_array_equal(samples, np.asarray(task.decode(state, codes)))


def test_vq_reconstruct_mode_encodes_the_binarized_images(tiny_idx):
  config = smoke_config("vqvae.py", "smoke", tiny_idx)
  with config.unlocked():
    config.data.binarization = "fixed"
  spec, task, state, eval_split = init_task(config)
  run = runs.Run("", config, spec, task, state, 0, parallel.create_mesh(jax.devices()[:1]))
  writer = ImageRecorder()
  latent_space.reconstruct_mode(run, None, writer)
  grid = writer.images["reconstruct"]
  columns = config.eval.num_images
  binarized = (eval_split.images[:columns] >= 128).astype(np.uint8)
  np.testing.assert_array_equal(grid[:columns], 255 * binarized)
  reconstruct = jax.jit(lambda state, x: task.decode(state, task.encode(state, x)))
  np.testing.assert_array_equal(grid[columns:], np.asarray(reconstruct(state, binarized)))


def test_beta_vae_mig_and_traversals_encode_the_binarized_images():
  images = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 1)).astype(np.uint8)
  factors = np.random.default_rng(1).integers(0, 3, (8, 2))
  split = pipeline.Split({"image": images, "factors": factors})
  seen = []

  def posterior(state, x, labels=None):  # posterior means = the first two pixels, unit variance
    jax.debug.callback(lambda value: seen.append(np.asarray(value)), x)
    flat = x.reshape(len(x), -1).astype(jnp.float32)
    return flat[:, :2], jnp.zeros_like(flat[:, :2])

  beta_vae_task.mig_metrics(None, None, split, None, posterior=posterior, batch_size=8,
                            num_bins=2, num_examples=0, factor_names=("a", "b"),
                            binarization="fixed", seed=0)
  assert seen and all(set(np.unique(x)) <= {0, 1} for x in seen)
  np.testing.assert_array_equal(np.concatenate(seen)[:8], images >= 128)
  seen.clear()
  config = load_config("beta_vae.py", "smoke")
  with config.unlocked():
    config.data.binarization, config.train.eval_batch_size = "fixed", 8
  task = tasks.common.Task(init=None, train_step=None, eval_step=None, sample=None,
                           posterior=posterior, encode_latents=lambda s, x, y=None: x,
                           decode_latents=lambda s, z, y=None: jnp.zeros((len(z), 4, 4, 1),
                                                                          jnp.uint8))
  run = runs.Run("", config, data.DatasetSpec((4, 4, 1), 2, 0), task, None, 0,
                 parallel.create_mesh(jax.devices()[:1]), loaded_eval_split=split)
  latent_space.traverse_mode(run, None, ImageRecorder())
  np.testing.assert_array_equal(np.concatenate(seen)[:8], images >= 128)


@pytest.mark.parametrize("filename,name", [("beta_vae.py", "sprites"),
                                           ("pixelcnn.py", "binarized_mnist"),
                                           ("ar_p.py", "ar_process")])
@pytest.mark.parametrize("binarization", ["fixed", "dynamic"])
def test_binarizing_data_that_is_not_8_bit_is_refused(filename, name, binarization):
  """binarize would map binary pixels {0, 1} to 0 (fixed) or almost always 0 (dynamic)."""
  config = load_config(filename, "smoke").data
  with config.unlocked():
    config.name, config.binarization = name, binarization
  with pytest.raises(UserError, match=f"^data.binarization={binarization} applies to 8-bit"):
    runs.dataset_spec(config)
  config.binarization = "none"
  assert runs.dataset_spec(config).num_levels == data.get_spec(config).num_levels
