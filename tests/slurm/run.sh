#!/usr/bin/env bash
# `make test-slurm`: run part of the demo DAG on a real single-node SLURM cluster, through
# profiles/slurm, and check it against a local run.
#
#  1. installs Debian's SLURM (slurmctld, slurmd, slurmdbd), munge and MariaDB if missing (root);
#  2. starts, on localhost and on free ports, a private MariaDB, slurmdbd (accounting: the executor
#     plugin polls job states with `sacct`, as on real clusters), slurmctld and slurmd, all
#     configured under a scratch directory (SLURM_CONF points there, and so does a link
#     /etc/slurm/slurm.conf for the test's length: the test refuses to run beside a real one);
#  3. runs the data stage of config/demo.yaml (every `prepare_source` and `build_corpus` job) with
#     `--workflow-profile profiles/slurm`, overriding only what is specific to this test cluster
#     (account, partitions file, memory, the status-check delay); then a probe rule asking for 2
#     GPUs (fake GRES devices) to check that a multi-GPU job is one task holding both GPUs;
#  4. runs the same data jobs locally (profiles/default), and check.py asserts that every job has
#     a COMPLETED sacct record submitted by this run (so a run that bypassed SLURM fails), with the
#     rule's memory and time limit, and that the outputs are byte-identical to the local run's;
#  5. stops every daemon it started (trap), also on failure or Ctrl-C. docs/scale_out.md has more.
#
# Environment: CREST_SLURM_TIMEOUT (seconds per snakemake call, default 600),
# CREST_SLURM_KEEP=1 keeps the scratch directory (logs, configs, outputs).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$REPO/.venv/bin
HERE=$REPO/tests/slurm
TIMEOUT=${CREST_SLURM_TIMEOUT:-600}
START=$SECONDS

say() { printf '[test-slurm %3ds] %s\n' $((SECONDS - START)) "$*"; }
die() { say "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (installs packages, starts the SLURM daemons)"
[[ -x $BIN/snakemake ]] || die "no $BIN/snakemake: run 'make venv' first"

WORK=$(mktemp -d /tmp/crest-slurm.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK"/{log,state,spool,dev}
DAEMONS=()          # "name pid" of every daemon this script started, in start order
POLICY_RC=""        # set when this script wrote /usr/sbin/policy-rc.d
LINKED_CONF=""      # set when this script linked /etc/slurm/slurm.conf to its own

cleanup() {
    local rc=$? i name pid
    set +e
    trap - EXIT INT TERM
    if [[ ${#DAEMONS[@]} -gt 0 ]]; then
        scancel --full --quiet --user "$(id -un)" 2>/dev/null
        for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
            read -r name pid <<<"${DAEMONS[i]}"
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && { say "$name did not stop, killing"; kill -KILL "$pid" 2>/dev/null; }
            wait "$pid" 2>/dev/null
        done
        say "stopped ${#DAEMONS[@]} daemons"
    fi
    [[ -n $POLICY_RC ]] && rm -f "$POLICY_RC"
    [[ -n $LINKED_CONF ]] && rm -f "$LINKED_CONF"
    if [[ $rc != 0 ]]; then
        for f in "$WORK"/log/*.log; do
            [[ -s $f ]] && { echo "---- tail of $f"; tail -n 25 "$f"; }
        done
        say "FAILED (exit $rc) after $((SECONDS - START)) s; scratch directory kept: $WORK"
    elif [[ ${CREST_SLURM_KEEP:-0} == 1 ]]; then
        say "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start a foreground daemon in the background and remember its pid for cleanup.
spawn() {
    local name=$1; shift
    "$@" >"$WORK/log/$name.out" 2>&1 &
    DAEMONS+=("$name $!")
}

# Wait up to $1 seconds for a command to succeed.
wait_for() {
    local secs=$1; shift
    for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# ---------------------------------------------------------------- 1. packages
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]}"
    # No init system here: keep the packages' postinst from trying to start their services.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        POLICY_RC=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC" && chmod 755 "$POLICY_RC"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$WORK/log/apt.log" 2>&1 || die "apt-get update failed (see $WORK/log/apt.log)"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$WORK/log/apt.log" 2>&1 \
        || { tail -n 20 "$WORK/log/apt.log"; die "apt-get install failed"; }
    if [[ -n $POLICY_RC ]]; then rm -f "$POLICY_RC"; POLICY_RC=""; fi
fi
say "slurm-wlm $(dpkg-query -W -f '${Version}' slurmctld), MariaDB $(dpkg-query -W -f '${Version}' mariadb-server)"

# ---------------------------------------------------------------- 2. daemons
read -r CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT < <("$BIN/python" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

# munge: reuse a working munged, else start one (as user munge, which owns its directories).
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running: reusing it"
else
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    spawn munged runuser -u munge -- /usr/sbin/munged --foreground
    wait_for 10 sh -c 'munge -n </dev/null | unmunge' || die "munged did not start"
fi

# MariaDB, private: own data directory, socket and port.
DB_SOCK=$WORK/mysql.sock
DB_PASS=crest-ci-$RANDOM$RANDOM
mariadb-install-db --no-defaults --user=root --datadir="$WORK/mysql" --skip-test-db \
    >"$WORK/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed"
spawn mariadbd mariadbd --no-defaults --user=root --datadir="$WORK/mysql" --socket="$DB_SOCK" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$WORK/mysql.pid" \
    --log-error="$WORK/log/mariadb.log" --innodb-lock-wait-timeout=900 --innodb-buffer-pool-size=256M
wait_for 60 mariadb-admin --no-defaults --socket="$DB_SOCK" -uroot ping || die "MariaDB did not start"
mariadb --no-defaults --socket="$DB_SOCK" -uroot -e \
    "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# SLURM configuration under $WORK; every client (sbatch, sacct, the executor plugin) reads it
# through SLURM_CONF, which the jobs inherit.
export SLURM_CONF=$WORK/slurm.conf
HOST=$(hostname -s)
# Node layout as slurmd sees it, with RealMemory below the real figure (else the node drains).
read -r -a LAYOUT < <(slurmd -C | head -n 1)
MEM=0
NODE=()
for kv in "${LAYOUT[@]}"; do
    case $kv in
        NodeName=*) ;;
        RealMemory=*) MEM=${kv#RealMemory=} ;;
        *) NODE+=("$kv") ;;
    esac
done
NODE_MEM=$((MEM * 9 / 10))
JOB_MEM=1500                   # memory each test job asks for (a rule's own mem_mb wins)
CLUSTER=crestci
PARTITION=crest_ci             # stands in for the user's partition and account in profiles/slurm
ACCOUNT=crest_ci

cat >"$SLURM_CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_comment
AccountingStorageTRES=gres/gpu
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 ${NODE[*]} RealMemory=$NODE_MEM Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# Two fake GPUs: character devices (copies of /dev/null) so that SLURM's GPU GRES has files to
# hand out and sets CUDA_VISIBLE_DEVICES in a GPU job, as on a real GPU node.
for i in 0 1; do mknod -m 666 "$WORK/dev/gpu$i" c 1 3; done
echo "NodeName=$HOST Name=gpu File=$WORK/dev/gpu[0-1]" >"$WORK/gres.conf"
cat >"$WORK/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$WORK/slurmdbd.pid
LogFile=$WORK/log/slurmdbd.log
EOF
chmod 600 "$WORK/slurmdbd.conf"
# The executor plugin's job step drops SLURM_CONF from the environment before it calls srun, so
# srun inside a job reads the default path: link it to this cluster's file for the test's length.
SYS_CONF=/etc/slurm/slurm.conf
if [[ -e $SYS_CONF || -L $SYS_CONF ]]; then
    [[ $(readlink "$SYS_CONF") == /tmp/crest-slurm.* ]] \
        || die "$SYS_CONF exists (a real SLURM installation?): this test runs its own cluster; not touching it"
    rm -f "$SYS_CONF"  # left by a test run that was killed
fi
mkdir -p /etc/slurm && ln -s "$SLURM_CONF" "$SYS_CONF" && LINKED_CONF=$SYS_CONF

spawn slurmdbd slurmdbd -D
wait_for 60 sacctmgr --noheader list cluster || die "slurmdbd did not answer"
sacctmgr --immediate --quiet add cluster "$CLUSTER" >/dev/null
sacctmgr --immediate --quiet add account "$ACCOUNT" cluster="$CLUSTER" description="crest CI" >/dev/null
sacctmgr --immediate --quiet add user "$(id -un)" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
spawn slurmctld slurmctld -D -f "$SLURM_CONF"
wait_for 60 scontrol ping || die "slurmctld did not start"
spawn slurmd slurmd -D -f "$SLURM_CONF"
node_idle() { [[ $(sinfo --noheader -n "$HOST" -o %t) == idle ]]; }
wait_for 60 node_idle || die "node $HOST not idle: $(sinfo -N -l)"
say "cluster up: ${NODE[*]}, RealMemory=$NODE_MEM, partition $PARTITION, accounting via slurmdbd"

# ---------------------------------------------------------------- 3-4. runs
SMK=(timeout -k 30 "$TIMEOUT" "$BIN/snakemake" -s "$REPO/Snakefile" --configfile "$REPO/config/demo.yaml")
# The data stage's outputs: one prepare_source job per source, one build_corpus job per corpus.
read -r -a DATA_JOBS < <("$BIN/python" -c "
from crest.config import load_config, run_dir
c = load_config('$REPO/config/demo.yaml'); r = run_dir(c)
print(*[f'{r}/data/{s}.parquet' for s in c['data']['sources']], *[f'{r}/data/corpora/{k}.parquet' for k in c['data']['corpora']])")
DATA_JOBS=(-- "${DATA_JOBS[@]}")
# What users set in profiles/slurm (SET_ME), for this cluster: the account, and the partitions
# file made the way the profile says; plus a short first status check: jobs here take seconds,
# the plugin waits 40 s by default.
"$BIN/generate-slurm-partition-config" -o "$WORK/partitions.yaml" >"$WORK/log/partitions.log" 2>&1
CLUSTER_ARGS=(--slurm-partition-config "$WORK/partitions.yaml"
              --default-resources "slurm_account=$ACCOUNT" "mem_mb=$JOB_MEM" runtime=30
              --slurm-init-seconds-before-status-checks 1)
for run in slurm local; do
    # The pinned wheels holding the demo data: one cache for both runs (and the repo's own runs).
    mkdir -p "$WORK/$run/results" "$REPO/results/cache"
    ln -s "$REPO/results/cache" "$WORK/$run/results/cache"
done

say "data stage on SLURM (--workflow-profile profiles/slurm)"
t0=$SECONDS
(cd "$WORK/slurm" && "${SMK[@]}" --workflow-profile "$REPO/profiles/slurm" "${CLUSTER_ARGS[@]}" "${DATA_JOBS[@]}") \
    >"$WORK/log/snakemake-slurm.log" 2>&1 || { tail -n 40 "$WORK/log/snakemake-slurm.log"; die "snakemake on SLURM failed"; }
say "SLURM run done in $((SECONDS - t0)) s"

say "GPU probe: one job asking for gpu=2"
t0=$SECONDS
(cd "$WORK/slurm" && timeout -k 30 "$TIMEOUT" "$BIN/snakemake" -s "$HERE/gpu_probe.smk" \
    --workflow-profile "$REPO/profiles/slurm" "${CLUSTER_ARGS[@]}") \
    >"$WORK/log/snakemake-gpu-probe.log" 2>&1 || { tail -n 40 "$WORK/log/snakemake-gpu-probe.log"; die "GPU probe failed"; }
say "GPU probe done in $((SECONDS - t0)) s"

say "the same data jobs locally (profiles/default)"
(cd "$WORK/local" && "${SMK[@]}" --cores 2 "${DATA_JOBS[@]}") \
    >"$WORK/log/snakemake-local.log" 2>&1 || { tail -n 40 "$WORK/log/snakemake-local.log"; die "local run failed"; }

# ---------------------------------------------------------------- 5. checks
CHECK=("$BIN/python" "$HERE/check.py")
"${CHECK[@]}" jobs --log "$WORK/log/snakemake-slurm.log" --account "$ACCOUNT" --partition "$PARTITION"
# The job check must be able to fail: it has to reject the local run, whose jobs never saw SLURM.
if "${CHECK[@]}" jobs --log "$WORK/log/snakemake-local.log" --account "$ACCOUNT" --partition "$PARTITION" 2>/dev/null; then
    die "check.py accepted the local run as a SLURM run"
fi
"${CHECK[@]}" outputs "$WORK/slurm" "$WORK/local"
"${CHECK[@]}" gpu-probe --log "$WORK/log/snakemake-gpu-probe.log" --env "$WORK/slurm/gpu_probe.env"
say "PASS in $((SECONDS - START)) s"
