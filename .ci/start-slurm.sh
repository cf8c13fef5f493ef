#!/usr/bin/env bash
# Start / stop / check a real single-node Slurm (Debian slurm-wlm 22.05 + munge + slurmdbd/mariadb)
# on this machine, for CI and local tests (submitit, Snakemake).  Must run as root.
#
#   bash .ci/start-slurm.sh start    # install if missing, start everything, wait until usable (idempotent)
#   bash .ci/start-slurm.sh stop     # stop daemons by the PIDs in their pid files (never by name)
#   bash .ci/start-slurm.sh status   # exit 0 iff slurmctld answers and the node is up
#
# Partition: "debug" (default, MaxTime=INFINITE).  Logs: /var/log/slurm.  State: /var/spool/slurm.
# Notes (see shared/docs/slurm-on-one-machine.md):
#  - Job ids restart at 1 when /var/spool/slurm is wiped: use a fresh submitit folder per run.
#  - Use time limits >= 2 min; slurmctld checks limits every 30 s.
set -euo pipefail

CLUSTER=qwenhpc
PARTITION=debug
NODE_CPUS=${SLURM_CI_CPUS:-4}          # more than the real cores so several small jobs run at once
WAIT_S=${SLURM_CI_WAIT_S:-60}

HOST=$(hostname -s)
ETC=/etc/slurm
LOG=/var/log/slurm
SPOOL=/var/spool/slurm
RUN=/run/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurmci   # local-only DB (--skip-networking, unix socket), throwaway CI password

PID_MUNGE=/run/munge/munged.pid
PID_MARIADB=/run/mysqld/mysqld.pid
PID_DBD=$RUN/slurmdbd.pid
PID_CTLD=$RUN/slurmctld.pid
PID_SLURMD=$RUN/slurmd.pid

T0=$(date +%s%N)
log() {
    local ms=$((($(date +%s%N) - T0) / 1000000))
    printf '[start-slurm %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- pid-file helpers
# read_pid FILE: the pid in FILE (empty if none; a daemon may remove its file at any moment).
read_pid() { cat "$1" 2>/dev/null | tr -dc '0-9' || true; }

# pid_alive FILE NAME: the pid in FILE is alive and its /proc/PID/comm is NAME (guards against pid reuse).
pid_alive() {
    local f=$1 name=$2 pid
    pid=$(read_pid "$f")
    [[ -n $pid ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    # A killed daemon can linger as a zombie until PID 1 reaps it: that is not alive.
    local stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# stop_pidfile FILE NAME: SIGTERM the process in FILE (if it is NAME), wait up to 20 s, then SIGKILL.
stop_pidfile() {
    local f=$1 name=$2 pid i
    if ! pid_alive "$f" "$name"; then
        rm -f "$f"
        return 0
    fi
    pid=$(read_pid "$f")
    [[ -n $pid ]] || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        pid_alive "$f" "$name" || break
        sleep 0.1
    done
    if pid_alive "$f" "$name"; then
        log "$name did not exit after 20 s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$f"
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

# start_daemon NAME CMD...: run a self-daemonising CMD with no inherited stdio (so callers that capture
# our output never hang on it); on failure show what it printed.
start_daemon() {
    local name=$1 out=$LOG/$1.start.log
    shift
    if ! "$@" </dev/null >"$out" 2>&1; then
        cat "$out" >&2
        die "$name failed to start; see $out and $LOG/"
    fi
}

# ---------------------------------------------------------------- install
install_packages() {
    local need=0 b
    for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sinfo /usr/bin/sacct /usr/sbin/munged \
        /usr/sbin/slurmdbd /usr/sbin/mariadbd /usr/bin/mariadb; do
        [[ -x $b ]] || need=1
    done
    ((need)) || return 0
    log "installing slurm, munge, slurmdbd, mariadb (apt)"
    # Package scripts cannot start services here (no systemd).  Debian's images may already ship a
    # policy-rc.d that exits 101: keep it; only create (and later remove, also on exit) our own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        MADE_POLICY=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends \
                slurmctld slurmd slurm-client munge slurmdbd mariadb-server
    } >"$TMP_APT_LOG" 2>&1 || rc=$?
    if ((MADE_POLICY)); then rm -f /usr/sbin/policy-rc.d && MADE_POLICY=0; fi
    if ((rc)); then
        tail -n 30 "$TMP_APT_LOG" >&2
        die "apt-get failed (rc=$rc)"
    fi
    log "packages installed"
}

# ---------------------------------------------------------------- configs
# write_if_changed DEST MODE: write stdin to DEST if it differs; returns 0 if it changed.
write_if_changed() {
    local dest=$1 mode=$2 tmp
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        chmod "$mode" "$dest"
        return 1
    fi
    mv -f "$tmp" "$dest"
    return 0
}

real_memory_mb() {
    # A little under MemTotal so slurmd never sees less than declared.
    awk '/^MemTotal:/ { m = int($2 / 1024) - 256; if (m < 512) m = 512; print m }' /proc/meminfo
}

write_configs() {
    mkdir -p "$ETC"
    CONF_CHANGED=0 DBD_CONF_CHANGED=0
    write_if_changed "$ETC/slurmdbd.conf" 600 <<EOF && DBD_CONF_CHANGED=1 || true
# Written by .ci/start-slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$PID_DBD
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB_NAME
StorageUser=$DB_USER
StoragePass=$DB_PASS
EOF
    write_if_changed "$ETC/slurm.conf" 644 <<EOF && CONF_CHANGED=1 || true
# Written by .ci/start-slurm.sh: single-node Slurm for CI/tests.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$PID_CTLD
SlurmdPidFile=$PID_SLURMD
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=5
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$(real_memory_mb) State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

# ---------------------------------------------------------------- daemons
start_munge() {
    # munged's own log stays in /var/log/munge: munged refuses a log file whose parent directories are
    # not owned by root or munge, and the package makes /var/log/slurm owned by the slurm user.
    mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    if pid_alive "$PID_MUNGE" munged; then return 0; fi
    rm -f "$PID_MUNGE" /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    log "starting munged"
    start_daemon munged runuser -u munge -- /usr/sbin/munged --pid-file="$PID_MUNGE"
    wait_for 10 munge bash -c 'munge -n | unmunge'
}

start_mariadb() {
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising mariadb data dir"
        mariadb-install-db --user=mysql --skip-test-db >"$LOG/mariadb-install.log" 2>&1
    fi
    if ! pid_alive "$PID_MARIADB" mariadbd; then
        rm -f "$PID_MARIADB"
        log "starting mariadbd (--skip-networking)"
        # mariadbd stays in the foreground: detach it into its own session, no inherited stdio.
        # (innodb settings: the values slurmdbd asks for, else it logs a warning at each start.)
        setsid /usr/sbin/mariadbd --user=mysql --skip-networking --pid-file="$PID_MARIADB" \
            --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
            </dev/null >>"$LOG/mariadb.log" 2>&1 &
        disown || true
    fi
    wait_for 30 mariadb mariadb -e 'SELECT 1'
    mariadb <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    if ! pid_alive "$PID_DBD" slurmdbd; then
        rm -f "$PID_DBD"
        log "starting slurmdbd"
        start_daemon slurmdbd /usr/sbin/slurmdbd
    elif ((DBD_CONF_CHANGED)); then
        log "slurmdbd.conf changed: restarting slurmdbd"
        stop_pidfile "$PID_DBD" slurmdbd
        start_daemon slurmdbd /usr/sbin/slurmdbd
    fi
    wait_for 30 "slurmdbd" sacctmgr -n -P show cluster
    if [[ -z $(sacctmgr -n -P show cluster where name="$CLUSTER" format=cluster) ]]; then
        log "registering cluster $CLUSTER in slurmdbd"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    # root user association is created with the cluster; make sure it exists (jobs run as root).
    if [[ -z $(sacctmgr -n -P show assoc where cluster="$CLUSTER" user=root format=user) ]]; then
        sacctmgr -i add user root account=root cluster="$CLUSTER" >/dev/null || true
    fi
}

start_slurmctld() {
    if pid_alive "$PID_CTLD" slurmctld; then
        if ((CONF_CHANGED)); then
            log "slurm.conf changed: scontrol reconfigure"
            scontrol reconfigure || true
        fi
        return 0
    fi
    rm -f "$PID_CTLD"
    log "starting slurmctld"
    start_daemon slurmctld /usr/sbin/slurmctld
    wait_for 30 slurmctld scontrol ping
}

start_slurmd() {
    if pid_alive "$PID_SLURMD" slurmd; then return 0; fi
    rm -f "$PID_SLURMD"
    log "starting slurmd"
    SLURMD_T=$(date +%s)
    start_daemon slurmd /usr/sbin/slurmd
}

node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1; }

# slurmd_registered: the slurmd we started has registered with slurmctld.  (After a slurmctld restart
# the node shows its saved state, e.g. idle, before the new slurmd has said anything.)
slurmd_registered() {
    ((SLURMD_T)) || return 0
    local t
    t=$(scontrol show node "$HOST" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2) || return 1
    [[ -n $t && $t != None ]] || return 1
    (($(date -d "$t" +%s) >= SLURMD_T - 1))
}

wait_node_idle() {
    local deadline=$(($(date +%s) + WAIT_S)) st resumed=0
    while :; do
        st=$(node_state || true)
        case $st in
            idle | mixed | allocated | completing) slurmd_registered && break ;;
            *drain* | down* | fail*)
                # ReturnToService=2 normally handles it; a node left DOWN/DRAIN by an earlier run is resumed.
                if ((!resumed)); then
                    log "node state '$st': resuming"
                    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
                    resumed=1
                fi
                ;;
        esac
        (($(date +%s) < deadline)) || die "node $HOST not idle after ${WAIT_S}s (state '$st'); see $LOG/"
        sleep 0.3
    done
    wait_for 30 sacct sacct -n -X -S now-1hours
}

is_up() {
    # slurmctld only notices a dead slurmd after SlurmdTimeout (300 s): check the local one too.
    pid_alive "$PID_SLURMD" slurmd || return 1
    scontrol ping >/dev/null 2>&1 || return 1
    local st
    st=$(node_state) || return 1
    # A trailing '*' (not responding), drain or down means not usable.
    case $st in idle | mixed | allocated | completing) return 0 ;; esac
    return 1
}

# ---------------------------------------------------------------- commands
cmd_start() {
    [[ $(id -u) == 0 ]] || die "must run as root"
    TMP_APT_LOG=$(mktemp /tmp/start-slurm-apt.XXXXXX)
    MADE_POLICY=0 SLURMD_T=0
    trap 'rm -f "$TMP_APT_LOG"; if ((MADE_POLICY)); then rm -f /usr/sbin/policy-rc.d; fi' EXIT
    install_packages
    mkdir -p "$SPOOL/ctld" "$SPOOL/d" "$RUN" "$LOG"
    chmod 755 "$SPOOL" "$RUN" "$LOG"
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_node_idle
    log "slurm up: cluster=$CLUSTER partition=$PARTITION node=$HOST cpus=$NODE_CPUS logs=$LOG"
    sinfo
}

cmd_stop() {
    stop_pidfile "$PID_SLURMD" slurmd
    stop_pidfile "$PID_CTLD" slurmctld
    stop_pidfile "$PID_DBD" slurmdbd
    stop_pidfile "$PID_MARIADB" mariadbd
    stop_pidfile "$PID_MUNGE" munged
    log "stopped"
}

cmd_status() {
    if command -v scontrol >/dev/null && is_up; then
        echo "slurm up: node $HOST $(node_state), partition $PARTITION"
        return 0
    fi
    echo "slurm not up"
    return 1
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 {start|stop|status}" >&2
        exit 2
        ;;
esac
