#!/usr/bin/env bash
# One pass of the scale checks on a machine with many cores and a GPU (written for 16 cores +
# one H200); every result is a text file under $OUT. Run from the checkout, with it on
# PYTHONPATH and gymnax, tyro, ale-py, psutil installed. Under 8 minutes in all: every step has
# its own `timeout`, so one that hangs or fails cannot eat the others' time.
#
#   OUT=/tmp/out bash benchmarks/device_check.sh
#   SMOKE=1 OUT=/tmp/out bash benchmarks/device_check.sh    # tiny sizes: does every step run?
#
# Steps: 1 machine; 2 sync A2C throughput on the default device (GPU) against a plain A2C;
# 3 async backends on CartPole, threads and processes, W = 1..16, against W independent
# processes; 4 processes at W = 16 on Pong, pools sized per worker vs as JAX sizes them, with
# the load average sampled during each run; 5 A2C on Pong with 64 games on the default
# device (the games stay on the host: a3c_jax.core.placement).
set -u
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [ "${SMOKE:-0}" = 1 ]; then
    SYNC_N="16 64"; SYNC_B="2000 8000"; SYNC_R=1
    WS="1 2"; SECS=1; PONG_W=2; PONG_S=3; PONG_STEPS=640; PONG_N=4
    T_SYNC=300; T_BACK=300; T_PONG=240; T_A2C=240
else
    SYNC_N="256 2048 16384"; SYNC_B="500000 5000000"; SYNC_R=2
    WS="1 2 4 8 16"; SECS=2; PONG_W=16; PONG_S=6; PONG_STEPS=10000; PONG_N=64
    T_SYNC=120; T_BACK=110; T_PONG=75; T_A2C=40   # 10 + 120 + 110 + 2 x 75 + 40 s < 8 min
fi

step() {   # step NAME TIMEOUT_S COMMAND...: run one step, its output in $OUT/NAME.txt
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    { echo "# $*"; timeout --kill-after=10 "$limit" "$@"; echo "# exit $? after $((SECONDS - t0)) s"; } \
        > "$OUT/$name.txt" 2>&1
    echo "$name: $(tail -n 1 "$OUT/$name.txt")" | tee -a "$OUT/summary.txt"
}

load_during() {   # load_during FILE COMMAND...: sample /proc/loadavg every 2 s while it runs
    local file=$1; shift
    ( while true; do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 2; done ) > "$file" &
    local sampler=$!
    "$@"; local rc=$?
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    return $rc
}
export -f load_during

# 1. the machine
{ nproc; cat /proc/loadavg; nvidia-smi -L 2>&1 | head -4
  $PY -c "import jax, psutil; print(jax.__version__, jax.devices(), psutil.cpu_count(), psutil.cpu_count(logical=False))"
} > "$OUT/machine.txt" 2>&1

# 2. sync A2C on the default device
step sync_throughput "$T_SYNC" $PY benchmarks/sync_throughput.py --num-envs $SYNC_N \
    --budgets $SYNC_B --repeats $SYNC_R --variants bare --paths scan shell

# 3. async backends on CartPole, CPU only (the workers are CPU programs)
step backends_cartpole "$T_BACK" env JAX_PLATFORMS=cpu $PY benchmarks/backends.py \
    --workers $WS --envs-per-worker 1 --seconds $SECS --backends threads processes

# 4. processes on Pong: pools sized per worker (default) vs as JAX sizes them (all)
for cores in default all; do
    if [ $cores = default ]; then unset A3C_JAX_WORKER_CORES; else export A3C_JAX_WORKER_CORES=all; fi
    step pong_processes_$cores "$T_PONG" env JAX_PLATFORMS=cpu bash -c \
        "load_during $OUT/pong_load_$cores.txt $PY benchmarks/backends.py --env ALE/Pong-v5 \
         --workers $PONG_W --envs-per-worker 1 --seconds $PONG_S --backends processes"
done
unset A3C_JAX_WORKER_CORES

# 5. A2C on Pong, N games, on the default device: with a GPU the games stay on the host and,
#    for now, so does the learner (a3c_jax.drivers.synchronous.SyncTrainer.device_scope);
#    this checks that the path runs on a GPU machine (it is unverified elsewhere)
a2c_pong='
import sys, time, jax
from a3c_jax import Config, run
n, steps = int(sys.argv[1]), int(sys.argv[2])
r = run(Config(algo="a2c", env="ALE/Pong-v5", num_envs=n, total_steps=steps, seeds=(0,),
               progress=False, out=""), write=False)
wall, cs = max(x["wall_time_s"] for x in r.rows), r.extras.get("compile_s", 0.0)
print(f"devices {jax.devices()} games {n}: {steps / wall:,.0f} env steps/s "
      f"({steps} steps in {wall:.1f} s after {cs:.1f} s compile)")
'
step a2c_pong_default "$T_A2C" $PY -c "$a2c_pong" $PONG_N $PONG_STEPS
echo "done; results in $OUT" | tee -a "$OUT/summary.txt"
