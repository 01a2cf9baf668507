#!/usr/bin/env bash
# Train gen_jax on a Cloud TPU VM slice: every worker runs `python -m gen_jax.main
# --distributed` (JAX finds the other workers itself on TPU VMs).
#
#   bash launch/run_tpu.sh --name N --zone Z --config configs/pixelcnn.py \
#       --workdir /mnt/shared/runs/pixelcnn [--accelerator v4-32] [--version V] \
#       [--project P] [--teardown] [--dry-run] [-- --config.train.num_steps=20000 ...]
#
# Steps: create the TPU VM (or reuse it when it exists), copy this checkout
# (git archive of HEAD) to every worker, set up .venv on every worker, kill
# stale gen_jax processes (a crashed run holds the TPU; the pattern [g]en_jax
# does not match the ssh shell itself), run the job on all
# workers with one log per worker (~/gen_jax_logs/worker_<hostname>.log), print the
# log tails, and delete the VM with --teardown. --dry-run prints the gcloud
# commands without running any of them.
#
# The workdir must be a path every worker sees (a Filestore/NFS mount or a
# gcsfuse-mounted bucket): Orbax writes each worker's shards there and
# process 0 writes metrics and samples.
set -euo pipefail

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  echo "error: $1" >&2
  exit 2
}

NAME="" ZONE="" CONFIG="" WORKDIR="" PROJECT=""
ACCELERATOR="v4-8" VERSION="tpu-ubuntu2204-base" TEARDOWN=0 DRY_RUN=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="${2-}"; shift 2 || usage "--name needs a value" ;;
    --zone) ZONE="${2-}"; shift 2 || usage "--zone needs a value" ;;
    --config) CONFIG="${2-}"; shift 2 || usage "--config needs a value" ;;
    --workdir) WORKDIR="${2-}"; shift 2 || usage "--workdir needs a value" ;;
    --accelerator) ACCELERATOR="${2-}"; shift 2 || usage "--accelerator needs a value" ;;
    --version) VERSION="${2-}"; shift 2 || usage "--version needs a value" ;;
    --project) PROJECT="${2-}"; shift 2 || usage "--project needs a value" ;;
    --teardown) TEARDOWN=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage "help" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) usage "unknown argument '$1'" ;;
  esac
done
for required in NAME ZONE CONFIG WORKDIR; do
  [[ -n "${!required}" ]] || usage "missing --$(tr '[:upper:]' '[:lower:]' <<<"$required")"
done
[[ "$CONFIG" == configs/*.py* ]] || usage "--config must be configs/NAME.py[:variant], got '$CONFIG'"

cd "$(dirname "$0")/.."
GCLOUD=(gcloud compute tpus tpu-vm)
SCOPE=(--zone "$ZONE")
[[ -n "$PROJECT" ]] && SCOPE+=(--project "$PROJECT")
ALL=(--worker=all)
ARCHIVE="/tmp/gen_jax_${NAME}.tar.gz"
JAX_VERSION="$(sed -n 's/^jax==//p' constraints.txt)"

run() {  # prints the command; runs it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}

on_all_workers() {
  run "${GCLOUD[@]}" ssh "$NAME" "${SCOPE[@]}" "${ALL[@]}" --command "$1"
}

# 1. Create the VM, or reuse it.
if [[ $DRY_RUN -eq 1 ]] || ! "${GCLOUD[@]}" describe "$NAME" "${SCOPE[@]}" >/dev/null 2>&1; then
  [[ $DRY_RUN -eq 1 ]] && echo "# (creates the VM only when 'describe' finds none)"
  run "${GCLOUD[@]}" create "$NAME" "${SCOPE[@]}" --accelerator-type "$ACCELERATOR" \
    --version "$VERSION"
fi

# 2. Copy the code: the committed tree, so every worker runs the same version.
run git archive --format=tar.gz --prefix=gen_jax/ -o "$ARCHIVE" HEAD
run "${GCLOUD[@]}" scp "$ARCHIVE" "$NAME:~/gen_jax.tar.gz" "${SCOPE[@]}" "${ALL[@]}"

# 3. The same environment on every worker (the pinned set, with JAX's TPU runtime).
on_all_workers "rm -rf ~/gen_jax && tar xzf ~/gen_jax.tar.gz -C ~ && cd ~/gen_jax && \
python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . && \
.venv/bin/pip install -q 'jax[tpu]==${JAX_VERSION}'"

# 4. Stale processes from an earlier run hold the TPU devices.
on_all_workers "pkill -f '[g]en_jax.main' || true; sudo rm -f /tmp/libtpu_lockfile"

# 5. The job on every worker, one log each; the command returns when all workers finish.
MAIN_ARGS=(--config "$CONFIG" --workdir "$WORKDIR" --distributed "${EXTRA[@]}")
printf -v MAIN_QUOTED ' %q' "${MAIN_ARGS[@]}"
on_all_workers "mkdir -p ~/gen_jax_logs && cd ~/gen_jax && \
.venv/bin/python -m gen_jax.main${MAIN_QUOTED} \
> ~/gen_jax_logs/worker_\$(hostname).log 2>&1; status=\$?; \
tail -n 5 ~/gen_jax_logs/worker_\$(hostname).log; exit \$status"

# 6. Delete the VM when asked (the workdir lives on shared storage and is kept).
if [[ $TEARDOWN -eq 1 ]]; then
  run "${GCLOUD[@]}" delete "$NAME" "${SCOPE[@]}" --quiet
fi
