#!/usr/bin/env bash
# Start a node of the project's Ray cluster on a plain host: inside the image (deploy/Dockerfile), or wherever the
# project is installed at the same path as on the Dagster side. The node runs in the foreground until stopped.
#
#   deploy/ray-cluster.sh head [RAY START OPTIONS]              # GCS :6379, job server :8265, client :10001
#   deploy/ray-cluster.sh worker HEAD_HOST [RAY START OPTIONS]  # on each worker host
#
# Then, where Dagster runs: AHRIUWU_RAY_ADDRESS=http://HEAD_HOST:8265, and every step becomes a Ray job there.
# Every node must mount the data root (AHRIUWU_DATA_ROOT) and see DAGSTER_HOME's dagster.yaml (PostgreSQL storage)
# at the same paths as the Dagster side. Ray detects a node's CPUs and GPUs; --num-cpus / --num-gpus override them,
# and --resources='{"name": 1}' gives a node a resource that steps can ask for. RAY_PORT, DASHBOARD_PORT and
# CLIENT_PORT move the head's ports.
set -euo pipefail
role=${1:-}
port=${RAY_PORT:-6379}
case "$role" in
  head)
    shift
    exec ray start --head --block --port="$port" --dashboard-host="${DASHBOARD_HOST:-0.0.0.0}" \
      --dashboard-port="${DASHBOARD_PORT:-8265}" --ray-client-server-port="${CLIENT_PORT:-10001}" \
      --include-dashboard=true --disable-usage-stats "$@" ;;
  worker)
    head=${2:?usage: $0 worker HEAD_HOST [ray start options]}
    shift 2
    exec ray start --block --address="$head:$port" --disable-usage-stats "$@" ;;
  *)
    echo "usage: $0 head [options] | $0 worker HEAD_HOST [options]" >&2
    exit 2 ;;
esac
