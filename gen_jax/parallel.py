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


def initialize_distributed(enabled: bool, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           timeout_s: int = 300) -> None:
  """Joins JAX's multi-controller runtime when asked.

  On a TPU VM slice (or under SLURM / Open MPI) JAX finds the coordinator,
  process count and id itself; elsewhere (several GPU hosts, or CPU processes
  on one machine, whose collectives then run over gloo) pass them explicitly.
  """
  if not enabled:
    if coordinator_address or num_processes or process_id is not None:
      raise UserError("--coordinator_address/--num_processes/--process_id need --distributed")
    return
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=timeout_s)
  except (RuntimeError, ValueError) as error:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise UserError(f"jax.distributed.initialize failed: {first_line}") from error


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


def replicate(tree, mesh: Mesh):
  """Host values every process holds identically (seeds, rngs) -> replicated global arrays.

  Multi-process jit and Orbax need global arrays; a key made outside jit is
  local to one device of one process.
  """
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def is_main_process() -> bool:
  return jax.process_index() == 0
