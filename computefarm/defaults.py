"""Every tunable default of the farm, each with what it is for."""

# The TaskManager's one port when farm.yaml names none; peers connect here.
TASKMANAGER_ADDRESS = "tcp://127.0.0.1:5555"

# Heartbeats, in seconds of time.monotonic(). A peer silent for
# HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS is taken for dead.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_LIVENESS = 3

# Reconnect back-off: the wait doubles after each failure, up to the cap. The
# cap is short because a restarted TaskManager waits for its peers to come back
# (RECOVERY_GRACE) before it runs their tasks anew; a try is one TCP handshake.
RECONNECT_INITIAL = 0.1
RECONNECT_MAX = 1.0
# Handshakes that fail without a reason (a wrong server key, another service on
# the port) before a peer gives up with an error.
HANDSHAKE_FAILURES = 3
# Seconds between reads of a welcomed peer's handshake events (a refusal of its
# key when it reconnects); before the welcome, every loop turn.
HANDSHAKE_WATCH = 0.05
# majordomo, after starting the configured TaskManager itself: how long its
# workers (which reconnect on their own) have to come back before a task whose
# capability none of them offers is an error.
WORKERS_RETURN = 5.0

# A task is tried this many times before it fails as lost.
MAX_ATTEMPTS = 3

# Largest message the TaskManager accepts (ZeroMQ drops the peer beyond it).
MAX_MESSAGE_SIZE = 64 * 1024 * 1024

# After a TaskManager start, tasks resubmitted by clients wait this long for
# workers to reconnect and claim them, so a running task is not started twice.
# A worker that lost the TaskManager tries again at most every RECONNECT_MAX
# seconds, and says hello within a heartbeat of connecting: the grace covers both.
RECOVERY_GRACE = 10.0

# A TaskManager stopped by a signal tells its peers it is restarting: clients
# wait this long for it (running tasks go on; their results reach the new
# TaskManager) before their outstanding tasks fail. Workers wait for ever.
HANDOVER_WAIT = 120.0

# The TaskManager remembers the last failures (farm-status shows them) and the
# last moves of tasks between states (task, from, to, why, when, worker), for
# debugging. Every entry outlives the tasks around it and keeps the memory they
# shared from going back to the system after a large queue drained: keep it short.
RECENT_FAILURES = 20
TRANSITION_LOG = 2000

# Results that arrive for tasks nobody has (re)submitted yet, kept for clients
# that are still reconnecting after a TaskManager restart.
ORPHAN_RESULTS_MAX = 10000
ORPHAN_RESULT_TTL = 300.0

# Longest sleep of any service loop: bounds how late a stop signal is seen.
POLL_MAX = 0.1

# Pipelining: a worker whose tasks take less than PIPELINE_WINDOW seconds (a
# moving average of its recent results) is sent up to PIPELINE_WINDOW seconds of
# them beyond its slots (at most PIPELINE_MAX a slot), to wait on the worker, so
# a slot that finishes starts its next task without a round trip to the
# TaskManager. A task never waits there longer than about the window.
PIPELINE_WINDOW = 0.02
PIPELINE_MAX = 16
# ... and the only worker of its capabilities, whose tasks take less than this
# (s), is sent one task a slot beyond them whatever their length: no other
# worker could start it sooner, and its slots no longer idle a round trip
# between tasks. A worker or user who comes later waits for at most one such
# task a slot; a longer pace keeps them from waiting longer.
PIPELINE_SOLE_WINDOW = 0.5
# Weight of the newest result in that moving average.
PIPELINE_SMOOTHING = 0.2
# While tasks wait on a worker for a slot, its results gather for up to this
# long (s), or this many, before they are sent: the waiting tasks keep its
# slots busy meanwhile, and both ways carry fewer, larger messages.
RESULT_GATHER = 0.002
RESULT_GATHER_COUNT = 64

# Messages one TaskManager loop iteration handles, at most, and for how long (s),
# before it schedules, flushes its replies and runs its timers.
DRAIN_BUDGET = 2000
DRAIN_TIME = 0.01
# A message that takes longer than this (s) to take in (decode, check, handle)
# is logged as a WARNING.
SLOW_MESSAGE = 0.05
# Seconds one iteration spends assigning tasks to workers, about: the TaskManager
# turns it into a count from what an assignment has cost so far; the rest go in
# the next iterations. SCHEDULE_BUDGET is the count before anything is measured.
SCHEDULE_TIME = 0.01
SCHEDULE_BUDGET = 1000

# Result acknowledgements a worker waits for before they go on their own (they
# ride on its next DISPATCH, or go at the next heartbeat round, half an interval).
ACK_BATCH = 1000

# Messages ZeroMQ queues per peer, each way, before a send is refused (peers'
# sockets). The TaskManager's own queues are shorter: a peer whose SEND_QUEUE
# replies are all unread is cut off; RECEIVE_QUEUE messages of one peer wait
# at most (then ZeroMQ stops reading its connection until the loop catches up).
HIGH_WATER_MARK = 100000
SEND_QUEUE = 10000
RECEIVE_QUEUE = 8

# A peer's refused messages get an ERROR reply (and a log line) at most this many
# a second, in bursts of at most REFUSAL_BURST; the rest are only counted.
REFUSAL_RATE = 10
REFUSAL_BURST = 20

# Tasks held at a peak before the TaskManager hands memory back once they drained;
# it runs Python's full garbage collection at most this often (s), and only
# while it holds fewer tasks than that (a full collection walks every object).
RECLAIM_AFTER = 10000
GC_FULL_INTERVAL = 60.0

# Seconds a stopping TaskManager waits for a log forwarder still starting to
# take the records kept for it.
LOG_HANDOVER = 5.0
# A log forwarder that died is started again, at most this often (s).
FORWARDER_RESTART = 2.0

# Output lines a worker keeps while it cannot reach the TaskManager; older ones
# beyond this are dropped (and counted in the log).
OUTPUT_BACKLOG_LINES = 100000

# An output line longer than this (bytes) keeps its beginning and ends with
# " [line cut: N more bytes]": a line without an end cannot fill a worker's memory.
OUTPUT_LINE_MAX = 64 * 1024

# Output a result carries (the tail, in characters): the streamed lines are the
# live view, the result's copy is what survives a TaskManager restart.
RESULT_OUTPUT_MAX = 1024 * 1024

# A process tree asked to stop with SIGTERM gets this long before SIGKILL.
KILL_GRACE = 1.0

# After a command exits, how long its orphaned children may hold its output
# pipes open before they are killed and the task finishes.
OUTPUT_DRAIN_GRACE = 0.5

# Python tasks: a pickled function longer than FUNCTION_INLINE_MAX bytes, and
# arguments or a result longer than PY_INLINE_MAX, travel as blobs of the
# TaskManager's store (worker/blobruns.py), not inside messages: a function
# crosses the port once per machine, and size is bounded by disks.
FUNCTION_INLINE_MAX = 16 * 1024
PY_INLINE_MAX = 1024 * 1024

# A task's process tree is recorded (worker/taskrecords.py: killed if its worker
# dies) once it has run this long: the tasks of a few milliseconds skip the file.
TASK_RECORD_AFTER = 0.05

# Search order for farm.yaml after --config (see config.find_config).
CONFIG_ENV = "COMPUTEFARM_CONFIG"
CONFIG_USER_PATH = "~/.config/computefarm/farm.yaml"

# The log viewer (cutelog) the log forwarder feeds; it must listen on 127.0.0.1.
CUTELOG_ADDRESS = "127.0.0.1:19996"
# Records kept in memory while cutelog is away; past that the oldest are dropped
# (they are still in the records file) and a WARNING record says how many.
CUTELOG_BUFFER = 100000
# Every task record also goes to this rotating file (5 files of 10 MB).
RECORDS_FILE = "~/.cache/computefarm/records.jsonl"
RECORDS_FILE_SIZE = 10 * 1024 * 1024
RECORDS_FILE_BACKUPS = 5
# Where majordomo keeps each run's timeline (a folder per project), unless
# --report says where; $COMPUTEFARM_RUNS moves it.
RUNS_DIR = "~/.cache/computefarm/runs"
RUNS_ENV = "COMPUTEFARM_RUNS"
# Runs of a project whose timeline and report are kept there (the newest).
RUNS_KEEP = 20
RUNS_KEEP_ENV = "COMPUTEFARM_RUNS_KEEP"
# A full disk pauses the records file: records are lost (and counted) and
# writing is tried again after this many seconds; the first record written
# then says how many were lost.
DISK_RETRY = 5.0

# Fair share (taskmanager/fairshare.py): a user's usage (slot-seconds) halves
# every USAGE_HALF_LIFE seconds (taskmanager.usage_half_life); each running task
# counts at least its user's moving average run time (weight of the newest:
# USAGE_SMOOTHING), USAGE_ESTIMATE seconds before any has finished.
USAGE_HALF_LIFE = 3600.0
USAGE_ESTIMATE = 1.0
USAGE_SMOOTHING = 0.2
# A user with no client, no task and less usage than this (slot-seconds) is forgotten.
USAGE_FORGOTTEN = 0.01

# Tasks one client may have queued or running; submissions beyond are refused
# with an error result (taskmanager.max_queued_per_client).
MAX_QUEUED_PER_CLIENT = 1000000
# ... and the bytes they may hold: their bodies, and TASK_OVERHEAD each for the
# TaskManager's bookkeeping (what a task costs it beyond its body, about).
MAX_QUEUED_BYTES_PER_CLIENT = 1 << 30
TASK_OVERHEAD = 512
# Log lines in flight to the log forwarder before new task output is dropped from
# the log (the forwarder grants more as it writes them); a warning in the
# TaskManager's own log every this many dropped lines.
LOG_CREDIT = 50000
LOG_DROP_REPORT_EVERY = 100000

# Output lines per second one task may send to the log viewer; beyond, lines are
# dropped from the viewer (counted, and the result keeps the tail).
MAX_LOG_RATE = 20000
# Bytes a second of LOG records (events) one client may send to the log viewer,
# in bursts of CLIENT_LOG_BURST; beyond, records are dropped and counted.
CLIENT_LOG_RATE = 1 << 20
CLIENT_LOG_BURST = 8 << 20

# A machine whose monitor has been silent for this many of its report intervals
# is "stale": its last report no longer says anything about its owner.
STALE_INTERVALS = 3

# The environment variable through which the TaskManager hands its log forwarder
# the forwarder's key pair and its own public key (never on a command line).
FORWARDER_KEYS_ENV = "COMPUTEFARM_FORWARDER_KEYS"

# A socket closing with messages still queued (a last BYE, the cancels of a
# stopping TaskManager) tries to deliver them this long, in milliseconds.
LINGER_MS = 1000

# A stopping worker waits this long for its task trees to die before it says BYE.
SHUTDOWN_WAIT = 2 * KILL_GRACE + 1.0

# The log forwarder's connection to cutelog: the wait between attempts doubles up
# to this many seconds; records are framed in writes of about this many bytes.
CUTELOG_RECONNECT_MAX = 2.0
CUTELOG_SEND_CHUNK = 256 * 1024

# The processes' own log (not the task records): level, and the rotation of
# logging.file (bytes per file, older files kept).
LOG_LEVEL = "INFO"
LOG_FILE_SIZE = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
# Names a log file (logging.file, logging.records) may take, the configured one
# first, when other processes hold it: each file has one writer (logfiles.py).
LOG_FILE_CLAIMS = 100

# Seconds between a monitor's reports (load.monitor_interval).
MONITOR_INTERVAL = 2.0

# A client sends its LOG records in batches of this many, or after this many
# seconds; at most CLIENT_LOG_BACKLOG records wait unsent (later ones dropped).
LOG_BATCH = 500
LOG_DELAY = 0.1
CLIENT_LOG_BACKLOG = 100000

# The TaskManager logs refused connections from one address at most this often (s).
REFUSAL_LOG_INTERVAL = 5.0

# Enrolment (farm-join): an address whose attempts failed ENROL_FAILURES times
# within ENROL_WINDOW seconds is refused (even at the handshake) until they age
# out; the TaskManager remembers at most ENROL_STRANGERS unknown keys and addresses.
ENROL_FAILURES = 5
ENROL_WINDOW = 60.0
ENROL_STRANGERS = 10000
# farm-join waits this long for the TaskManager's answer (s).
ENROL_TIMEOUT = 15.0
# What an invitation is valid for unless farm-keys invite --expires says (s).
INVITATION_EXPIRES = 3600.0

# farm-service restarts a child that died after SUPERVISE_BACKOFF s, doubling up
# to SUPERVISE_BACKOFF_MAX; one that stayed up SUPERVISE_STABLE s starts over at
# the shortest wait. Children get SUPERVISE_STOP s to stop after SIGTERM.
SUPERVISE_BACKOFF = 1.0
SUPERVISE_BACKOFF_MAX = 60.0
SUPERVISE_STABLE = 60.0
SUPERVISE_STOP = 30.0
# farm-join writes the machine's keys here (its farm.yaml at CONFIG_USER_PATH).
JOIN_DIR = "~/.config/computefarm/joined"

# A pilot with --lifetime stops taking work this share of it before the end, at
# most PILOT_DRAIN_MAX seconds (farm-worker --drain-before overrides).
PILOT_DRAIN_SHARE = 0.1
PILOT_DRAIN_MAX = 300.0

# farm-factory: its rounds' STATUS waits this long (s); after a failure the next
# round waits factory.interval, doubling up to FACTORY_BACKOFF_MAX (s).
FACTORY_STATUS_TIMEOUT = 10.0
FACTORY_BACKOFF_MAX = 300.0
# An engine command (sbatch, squeue, ssh) that has not answered in this long has
# failed (s): squeue, for one, retries a missing configuration for a minute.
FACTORY_COMMAND_TIMEOUT = 20.0

# A task killed by SIGTERM, SIGKILL, SIGHUP or SIGINT (not by its worker) is
# reported this long after it ended (s): when its worker is being stopped too (a
# scheduler ending a pilot's job signals all its processes at once), the task is
# handed back instead, and runs again elsewhere.
SIGNALLED_GRACE = 0.5

# majordomo's embedded farm is kept this long after the last run used it (s;
# majordomo --keep-farm, $COMPUTEFARM_KEEP_FARM; 0: a farm per run); its keeper
# looks whether it is used this often (s).
KEEP_FARM = 300.0
KEEP_FARM_ENV = "COMPUTEFARM_KEEP_FARM"
KEEPER_CHECK = 1.0

# farm-status --watch redraws this often (s).
WATCH_INTERVAL = 2.0

# Where farm-keys keeps the farm's keys unless told --dir.
KEYS_DIR = "~/.config/computefarm/keys"
# A farm on a loopback address without keys (and majordomo's embedded farm) uses
# this user's own key set, made here on first use (or where LOCAL_KEYS_ENV says).
LOCAL_KEYS_DIR = "~/.config/computefarm/local-keys"
LOCAL_KEYS_ENV = "COMPUTEFARM_LOCAL_KEYS"

# A worker records each running task's process tree in this private folder, so the
# next worker or the monitor of the machine can kill the trees of a worker killed
# with SIGKILL: under $XDG_RUNTIME_DIR when it exists, else TASK_RECORDS_DIR (or
# where TASK_RECORDS_ENV says).
TASK_RECORDS_RUNTIME = "computefarm/tasks"
TASK_RECORDS_DIR = "~/.cache/computefarm/tasks"
TASK_RECORDS_ENV = "COMPUTEFARM_TASK_RECORDS"

# LocalFarm: seconds its TaskManager and workers may take to start.
START_TIMEOUT = 20.0

# majordomo: seconds to reach a configured TaskManager; seconds a finished
# task's targets may take to appear here (a slow shared filesystem); seconds
# Ctrl-C waits for remote tasks to stop; seconds a task runs before its start
# is announced.
CONNECT_TIMEOUT = 5.0
TARGET_WAIT = 5.0
CANCEL_WAIT = 15.0
ANNOUNCE_AFTER = 1.0

# Files over the port (storage/). Blobs move in chunks of CHUNK_SIZE bytes, at
# most TRANSFER_WINDOW chunks of a peer's in flight at once (each answered
# before the next goes), so the TaskManager's loop takes a transfer a chunk at a
# time between dispatches, heartbeats and logs, and holds at most a window of it.
CHUNK_SIZE = 1 << 20
TRANSFER_WINDOW = 8
# A transfer with chunks in flight and no answer for this long (s) sends them again.
TRANSFER_STALL = 30.0
# Blobs a peer may be uploading at once (partial files on the TaskManager).
UPLOADS_PER_PEER = 64
# Blobs one peer, and all peers together, may hold in the TaskManager's store
# (FIND hold: evicted last while the peer is connected; ~200 bytes of memory each,
# the digest's string included: 40 MB for one peer, 100 MB for all at most).
HELD_BLOBS = 200_000
HELD_BLOBS_ALL = 500_000
# The TaskManager's blob store and each machine's cache (its workers share it):
# where (farm.yaml taskmanager.store, machines.NAME.cache, else these variables,
# else these folders), and how many bytes before the least recently used blobs
# go (taskmanager.store_size, machines.NAME.cache_size).
STORE_ENV, STORE_DIR = "COMPUTEFARM_STORE", "~/.cache/computefarm/store"
STORE_SIZE = 20 << 30
CACHE_ENV, CACHE_DIR = "COMPUTEFARM_CACHE", "~/.cache/computefarm/cache"
CACHE_SIZE = 4 << 30
# A client's digests of its project's files (path, size, mtime, inode -> digest),
# so a run reads again only the files that changed.
DIGESTS_ENV, DIGESTS_DIR = "COMPUTEFARM_DIGESTS", "~/.cache/computefarm/digests"

# Batches (farm-run): kept in an SQLite database on the TaskManager's machine
# (farm.yaml taskmanager.database, else DATA_ENV's folder, else DATA_DIR) named
# for the port, so a TaskManager restarted on its port finds its batches again.
# A TaskManager on a port chosen at random (port 0) keeps them in memory.
DATA_ENV, DATA_DIR = "COMPUTEFARM_DATA", "~/.local/share/computefarm"
# Tasks of one batch the TaskManager holds in memory at once, queued or running:
# the rest wait on disk, so a million queued tasks do not need a million records.
BATCH_WINDOW = 2000
# ... and characters of their command lines at most (long commands: a smaller window).
BATCH_WINDOW_BYTES = 32 << 20
# Commands one BATCH message carries at most (and bytes, about), and BATCH
# messages a client has on their way at once, each answered once on disk.
BATCH_PART = 2000
BATCH_PART_BYTES = 1 << 20
BATCH_PARTS_IN_FLIGHT = 8
# The longest command line of a batch (characters).
BATCH_COMMAND_MAX = 1 << 16
# Characters of a task's output (its result's tail) a batch keeps.
BATCH_OUTPUT_MAX = 256 * 1024
# A batch whose client went before sending all its commands is dropped after this
# long without a part (s): it was never acknowledged, so nothing is lost.
BATCH_OPEN_TTL = 3600.0
# A database write that failed (a full disk) is tried again this often (s); the
# results it holds are not acknowledged to their workers until it succeeds.
DATABASE_RETRY = 1.0
# Straggler speculation: a running task of a batch that allows it, with idle
# slots around, gets a second copy once it has run SPECULATE_AFTER times the
# median run time of its batch's finished tasks (at least SPECULATE_MIN_DONE of
# them), or once its machine's owner has suspended it.
SPECULATE_AFTER = 2.0
SPECULATE_MIN_DONE = 3
