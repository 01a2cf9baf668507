"""Devices, the data-parallel mesh, shardings and multi-host setup.

One code path for 1 device, N devices and N hosts: a `Mesh(('data',))` over
all devices, batches sharded on 'data', state replicated; `jax.jit` inserts the
collectives. Each process contributes its local slice of every global batch.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_jax.errors import UserError

DATA_AXIS = "data"


def initialize_distributed(enabled: bool) -> None:
  """Joins the multi-controller runtime (TPU VM / multi-GPU launch) when asked."""
  if enabled:
    jax.distributed.initialize()


def configure_cpu_devices(num_devices: int) -> None:
  """Splits the host CPU into `num_devices` JAX devices (0: JAX's default, one).

  Data parallel over host devices speeds up conv-heavy steps on a multi-core
  CPU; it does nothing on GPU/TPU hosts. Must run before JAX starts its backend.
  """
  if num_devices > 0:
    jax.config.update("jax_num_cpu_devices", num_devices)


def create_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh with auto sharding (Flax convs need AxisType.Auto)."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices, (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "train.batch_size") -> None:
  """The global batch must split evenly over devices and processes."""
  devices, processes = mesh.devices.size, jax.process_count()
  if batch_size % devices or batch_size % processes:
    raise UserError(f"{name}={batch_size} does not divide over {devices} devices "
                    f"({processes} processes); use a multiple of {devices}")


def to_global(local_batch, mesh: Mesh):
  """This process's slice of a batch (numpy pytree) -> global jax.Arrays sharded on 'data'."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def is_main_process() -> bool:
  return jax.process_index() == 0
