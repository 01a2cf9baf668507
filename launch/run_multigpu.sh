#!/usr/bin/env bash
# Train gen_jax on one or several GPU hosts.
#
#   One host, all its GPUs (one process drives them; the batch splits over them):
#     bash launch/run_multigpu.sh --config configs/pixelcnn.py --workdir runs/pixelcnn
#   Several hosts: run the same command on every host, with its index
#     bash launch/run_multigpu.sh --config C --workdir W --coordinator HOST0:1234 \
#         --num-hosts 2 --host-id 0      (on host 0; --host-id 1 on host 1)
#   Under SLURM (srun, one task per host) JAX reads the job itself:
#     srun --ntasks-per-node=1 bash launch/run_multigpu.sh --config C --workdir W --slurm
#   --dry-run prints the command instead of running it; anything after `--` goes to
#   gen_jax.main (e.g. -- --config.train.batch_size=512).
#
# The workdir must be on storage every host sees (NFS): Orbax writes each host's
# shards there and process 0 writes metrics and samples.
set -euo pipefail

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  echo "error: $1" >&2
  exit 2
}

CONFIG="" WORKDIR="" COORDINATOR="" NUM_HOSTS="" HOST_ID="" SLURM=0 DRY_RUN=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG="${2-}"; shift 2 || usage "--config needs a value" ;;
    --workdir) WORKDIR="${2-}"; shift 2 || usage "--workdir needs a value" ;;
    --coordinator) COORDINATOR="${2-}"; shift 2 || usage "--coordinator needs a value" ;;
    --num-hosts) NUM_HOSTS="${2-}"; shift 2 || usage "--num-hosts needs a value" ;;
    --host-id) HOST_ID="${2-}"; shift 2 || usage "--host-id needs a value" ;;
    --slurm) SLURM=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage "help" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) usage "unknown argument '$1'" ;;
  esac
done
[[ -n "$CONFIG" ]] || usage "missing --config"
[[ -n "$WORKDIR" ]] || usage "missing --workdir"

cd "$(dirname "$0")/.."
COMMAND=(.venv/bin/python -m gen_jax.main --config "$CONFIG" --workdir "$WORKDIR")
if [[ $SLURM -eq 1 ]]; then
  COMMAND+=(--distributed)
elif [[ -n "$COORDINATOR$NUM_HOSTS$HOST_ID" ]]; then
  [[ -n "$COORDINATOR" && -n "$NUM_HOSTS" && -n "$HOST_ID" ]] ||
    usage "several hosts need all of --coordinator, --num-hosts and --host-id"
  COMMAND+=(--distributed "--coordinator_address=$COORDINATOR" "--num_processes=$NUM_HOSTS"
            "--process_id=$HOST_ID")
fi
COMMAND+=("${EXTRA[@]}")

printf '+'; printf ' %q' "${COMMAND[@]}"; printf '\n'
if [[ $DRY_RUN -eq 0 ]]; then
  make setup
  exec "${COMMAND[@]}"
fi
