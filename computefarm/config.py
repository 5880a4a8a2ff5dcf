"""farm.yaml: one file that describes the farm, validated on load.

Configuration flows one way: the defaults in ``defaults.py`` -> one validated
``FarmConfig`` -> constructor arguments. Every mistake is a ConfigError whose one
line names the file, the key and what was expected; unknown keys are mistakes.
"""

import os
from dataclasses import dataclass, field

from . import addresses, defaults
from .configcheck import Checker
from .exceptions import ConfigError

PLACEMENTS = ("load", "round-robin")

ON_OWNER = ("suspend", "requeue", "continue")
ON_STALE = ("run", "hold")


@dataclass
class Policy:
    max_load: float = 1.5           # load average per core above which no new work starts
    min_free_memory: int = 256      # MiB that must stay available
    owner_cpu_limit: float = 50.0   # % of the machine the owner may use before backing off
    on_owner: str = "suspend"       # what running tasks do when the owner is active
    requeue_grace: float = 10.0     # seconds the owner must stay active before a requeue
    stale: str = "hold"             # whether a machine whose monitor is silent gets work




@dataclass
class UserPolicy:
    weight: float = 1.0             # share of the farm against other users' weights
    max_slots: int = None           # slots its tasks may hold at once (None: any)
    max_queued: int = None          # its tasks queued or running, all its clients together
    max_queued_bytes: int = None    # ... and the bytes they may hold in the TaskManager
    priority: bool = True           # may submit tasks with priority above 0


@dataclass
class TaskManagerConfig:
    address: str = defaults.TASKMANAGER_ADDRESS
    bind: str = None
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL
    heartbeat_liveness: int = defaults.HEARTBEAT_LIVENESS
    max_attempts: int = defaults.MAX_ATTEMPTS
    max_message_size: int = defaults.MAX_MESSAGE_SIZE
    recovery_grace: float = defaults.RECOVERY_GRACE
    handover_wait: float = defaults.HANDOVER_WAIT   # how long clients wait for a restart
    max_queued_per_client: int = defaults.MAX_QUEUED_PER_CLIENT
    max_queued_bytes_per_client: int = defaults.MAX_QUEUED_BYTES_PER_CLIENT
    max_log_rate: int = defaults.MAX_LOG_RATE
    usage_half_life: float = defaults.USAGE_HALF_LIFE   # fair share's memory (s)
    store: str = None    # the blob store (files over the port); None: storage.cas.location
    store_size: int = defaults.STORE_SIZE    # ... its size limit in bytes
    database: str = None   # batches' SQLite file; None: by port (taskmanager/server.py)
    speculate_after: float = defaults.SPECULATE_AFTER   # stragglers: x the median run time
    configured: bool = False  # whether farm.yaml named an address at all

    @property
    def bind_address(self):
        return self.bind or self.address


@dataclass
class WorkerSpec:
    capabilities: list
    slots: int = None
    attributes: dict = field(default_factory=dict)


@dataclass
class Upstream:
    address: str
    weight: float = 1.0         # its share of the machine's slots while several want them
    server: str = None          # that TaskManager's public key file (None: keys.server)


@dataclass
class MachineConfig:
    name: str
    host: str = None
    workers: list = field(default_factory=list)
    path_map: dict = field(default_factory=dict)   # client path prefix -> path here
    policy: Policy = None                           # None: the load section's policy
    taskmanagers: list = field(default_factory=list)   # Upstream: those it serves, if several
    cache: str = None    # its workers' blob cache (staged tasks); None: storage.cas.location
    cache_size: int = defaults.CACHE_SIZE    # ... its size limit in bytes
    monitor: bool = True       # farm-service runs a monitor beside its workers


@dataclass
class KeysConfig:
    server: str = None          # the TaskManager's public key file (every process)
    server_secret: str = None   # the TaskManager's secret key file (the TaskManager)
    authorized: str = None      # directory of trusted public keys (the TaskManager)
    secret: str = None          # this machine's or user's secret key file (other processes)
    invitations: str = None     # farm-keys invite's directory (the TaskManager);
    #                             None: ``invitations`` beside ``authorized``

    def invitations_dir(self):
        return self.invitations or os.path.join(
            os.path.dirname(self.authorized.rstrip("/")), "invitations")

    def peer_curve(self, where="keys"):
        """``(public, secret, server public)`` for a connecting process, or None."""
        from .wire.certificates import load_public, load_secret
        if not self.secret:
            return None
        if not self.server:
            raise ConfigError("%s.server: needed with %s.secret (the TaskManager's public "
                              "key file)" % (where, where))
        public, secret = load_secret(self.secret)
        return public, secret, load_public(self.server)

    def curve_for(self, server, where="keys"):
        """``peer_curve`` with another TaskManager's public key file (``server``;
        None: ``keys.server``)."""
        from .wire.certificates import load_public
        curve = self.peer_curve(where)
        if server is None:
            return curve
        if curve is None:
            raise ConfigError("%s.secret: needed to connect to a TaskManager whose public "
                              "key is %s" % (where, server))
        return curve[0], curve[1], load_public(server)


@dataclass
class LoadConfig:
    placement: str = "load"          # "load": rank by expected finish; "round-robin": ignore load
    monitor_interval: float = defaults.MONITOR_INTERVAL   # seconds between a monitor's reports
    policy: Policy = field(default_factory=Policy)   # for machines that set none


@dataclass
class LoggingConfig:
    level: str = defaults.LOG_LEVEL
    file: str = None
    cutelog: str = defaults.CUTELOG_ADDRESS      # HOST:PORT of the log viewer, or None
    records: str = defaults.RECORDS_FILE         # rotating file of every task record
    buffer: int = defaults.CUTELOG_BUFFER        # records kept while the viewer is away


@dataclass
class StagingConfig:
    mode: str = "auto"      # auto: a client stages its project for a TaskManager not its
    #                         own embedded one; off: workers must see the files (path_map)
    exclude: list = field(default_factory=list)   # gitignore-style: not part of the tree


@dataclass
class FactoryConfig:
    """farm-factory's pilots (``factory:``); ``options``: its backend's own section."""
    backend: str = None             # slurm, ssh, local, or module:Class
    name: str = "computefarm-pilot"   # its pilots' job name: found again after a restart
    min: int = 0                    # pilots kept even with nothing to do
    max: int = 4                    # pilots at most
    interval: float = 5.0           # seconds between looks at the demand
    capabilities: list = field(default_factory=lambda: ["shell"])   # what pilots offer
    slots: int = 1                  # each pilot's
    attributes: dict = field(default_factory=dict)   # what tasks may constrain on
    idle_exit: float = 60.0         # a pilot leaves after this long with nothing to do
    lifetime: float = None          # a pilot's walltime (s): it drains before its end
    max_tasks: int = None           # a pilot leaves after this many tasks
    python: str = None              # the pilots' Python (default: the factory's)
    pilot_config: str = None        # the farm.yaml pilots read (keys); default: the factory's
    workdir: str = None             # scripts and pilots' logs; default: DATA/factory-NAME
    options: dict = field(default_factory=dict)


FACTORY_BACKENDS = ("slurm", "ssh", "local")


@dataclass
class FarmConfig:
    path: str = None
    taskmanager: TaskManagerConfig = field(default_factory=TaskManagerConfig)
    machines: dict = field(default_factory=dict)
    load: LoadConfig = field(default_factory=LoadConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    users: dict = field(default_factory=dict)    # user name -> UserPolicy
    staging: StagingConfig = field(default_factory=StagingConfig)
    this_machine: str = None     # ``machine:``: this machine's name (farm-join writes it)
    factory: FactoryConfig = None   # ``factory:``: farm-factory's pilots

    def machine(self, name):
        """The machine entry called ``name`` (or whose host is ``name``), else None."""
        if name in self.machines:
            return self.machines[name]
        for machine in self.machines.values():
            if machine.host == name:
                return machine
        return None

    def offered_capabilities(self):
        """Every capability some machine in the file offers."""
        return {cap for m in self.machines.values() for w in m.workers for cap in w.capabilities}


def find_config(explicit=None, cwd=None, environ=None):
    """The farm.yaml to use: --config, ./farm.yaml, $COMPUTEFARM_CONFIG, the user's; or None."""
    environ = os.environ if environ is None else environ
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError("%s: no such configuration file" % explicit)
        return explicit
    candidates = [os.path.join(cwd or os.getcwd(), "farm.yaml"),
                  environ.get(defaults.CONFIG_ENV),
                  os.path.expanduser(defaults.CONFIG_USER_PATH)]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    return None


def load_config(explicit=None, cwd=None, environ=None):
    """The validated FarmConfig from the first farm.yaml found, or the defaults."""
    path = find_config(explicit, cwd, environ)
    if path is None:
        return FarmConfig()
    import yaml  # only when there is a farm.yaml: a command's start pays less
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError("%s: cannot read: %s" % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " line %d" % (mark.line + 1) if mark else ""
        raise ConfigError("%s:%s not valid YAML: %s" % (path, where,
                          getattr(exc, "problem", None) or exc)) from None
    return parse_config(data, path)


_POLICY_KEYS = ("max_load", "min_free_memory", "owner_cpu_limit", "on_owner", "requeue_grace",
                "stale")

# The keys each section may hold: the reference farm.yaml lists every one
# (tests/test_config.py checks it against this table).
SCHEMA = {
    "": ("taskmanager", "machines", "logging", "load", "keys", "users", "staging", "machine",
         "factory"),
    "factory": ("backend", "name", "min", "max", "interval", "capabilities", "slots",
                "attributes", "idle_exit", "lifetime", "max_tasks", "python", "pilot_config",
                "workdir") + FACTORY_BACKENDS,
    "staging": ("mode", "exclude"),
    "taskmanager": ("address", "bind", "heartbeat_interval", "heartbeat_liveness",
                    "max_attempts", "max_message_size", "recovery_grace", "handover_wait",
                    "max_queued_per_client", "max_queued_bytes_per_client", "max_log_rate",
                    "usage_half_life", "store", "store_size", "database", "speculate_after"),
    "machines.NAME": ("host", "workers", "path_map", "policy", "taskmanagers", "cache",
                      "cache_size", "monitor"),
    "machines.NAME.taskmanagers[]": ("address", "weight", "server"),
    "machines.NAME.workers[]": ("capabilities", "slots", "attributes"),
    "machines.NAME.policy": _POLICY_KEYS,
    "load": ("placement", "monitor_interval", "policy"),
    "load.policy": _POLICY_KEYS,
    "logging": ("level", "file", "cutelog", "records", "buffer"),
    "keys": ("server", "server_secret", "authorized", "secret", "invitations"),
    "users.NAME": ("weight", "max_slots", "max_queued", "max_queued_bytes", "priority"),
}


def parse_config(data, path="farm.yaml"):
    """FarmConfig from already-parsed YAML data; ConfigError names the key at fault."""
    check = Checker(path)
    if data is None:
        data = {}
    top = check.mapping(data, "", SCHEMA[""])
    config = FarmConfig(path=path)
    if top.get("machine") is not None:
        config.this_machine = check.string(top["machine"], "machine")
    if "keys" in top:
        section = check.mapping(top["keys"], "keys", SCHEMA["keys"])
        for key, value in section.items():
            if value is not None:             # null: not set
                setattr(config.keys, key, os.path.expanduser(check.string(value,
                                                                          "keys." + key)))
        if config.keys.server_secret and not config.keys.authorized:
            check.fail("keys.authorized", "needed with keys.server_secret (the directory of "
                       "trusted public keys)")
    if "taskmanager" in top:
        config.taskmanager = _taskmanager(check, top["taskmanager"])
    if "load" in top:
        config.load = _load(check, top["load"])
    if "staging" in top:
        config.staging = _staging(check, top["staging"])
    if "machines" in top:
        machines = check.mapping(top["machines"], "machines")
        config.machines = {str(name): _machine(check, spec, "machines.%s" % name, str(name))
                           for name, spec in machines.items()}
        for machine in config.machines.values():
            if machine.policy is None:
                machine.policy = config.load.policy
            else:
                machine.policy = _policy(check, machine.policy, "machines.%s.policy"
                                         % machine.name, config.load.policy)
    if "logging" in top:
        config.logging = _logging(check, top["logging"])
    if top.get("factory") is not None:
        config.factory = _factory(check, top["factory"])
    if "users" in top:
        users = check.mapping(top["users"], "users")
        config.users = {str(name): _user(check, spec, "users.%s" % name)
                        for name, spec in users.items()}
    return config


def _taskmanager(check, data):
    section = check.mapping(data, "taskmanager", SCHEMA["taskmanager"])
    tm = TaskManagerConfig()
    if "address" in section:
        tm.address = check.address(section["address"], "taskmanager.address")
        tm.configured = True
    if section.get("bind") is not None:
        tm.bind = check.address(section["bind"], "taskmanager.bind", allow_port_zero=True)
    for key in ("heartbeat_interval", "recovery_grace", "handover_wait", "usage_half_life",
                "speculate_after"):
        if key in section:
            setattr(tm, key, check.number(section[key], "taskmanager." + key))
    for key in ("heartbeat_liveness", "max_attempts", "max_message_size",
                "max_queued_per_client", "max_queued_bytes_per_client", "max_log_rate",
                "store_size"):
        if key in section:
            setattr(tm, key, check.integer(section[key], "taskmanager." + key, minimum=1))
    if section.get("store") is not None:
        tm.store = check.string(section["store"], "taskmanager.store")
    if section.get("database") is not None:
        tm.database = check.string(section["database"], "taskmanager.database")
    return tm


def _machine(check, data, where, name):
    section = check.mapping(data, where, SCHEMA["machines.NAME"])
    machine = MachineConfig(name=name)
    if "policy" in section:
        machine.policy = check.mapping(section["policy"], where + ".policy")  # checked later
    if "host" in section:
        machine.host = check.string(section["host"], where + ".host")
    if "monitor" in section:
        machine.monitor = check.boolean(section["monitor"], where + ".monitor")
    if section.get("cache") is not None:
        machine.cache = check.string(section["cache"], where + ".cache")
    if "cache_size" in section:
        machine.cache_size = check.integer(section["cache_size"], where + ".cache_size",
                                           minimum=1)
    if "path_map" in section:
        machine.path_map = check.str_map(section["path_map"], where + ".path_map")
        for source, target in machine.path_map.items():
            if not (source.startswith("/") and target.startswith("/")):
                check.fail("%s.path_map.%s" % (where, source), "expected absolute paths")
    upstreams = section.get("taskmanagers") or []
    if not isinstance(upstreams, list):
        check.fail(where + ".taskmanagers", "expected a list of TaskManagers")
    for index, spec in enumerate(upstreams):
        upath = "%s.taskmanagers[%d]" % (where, index)
        usec = check.mapping(spec, upath, SCHEMA["machines.NAME.taskmanagers[]"])
        if "address" not in usec:
            check.fail(upath + ".address", "missing (tcp://HOST:PORT)")
        upstream = Upstream(check.address(usec["address"], upath + ".address"))
        if "weight" in usec:
            upstream.weight = check.number(usec["weight"], upath + ".weight")
        if usec.get("server") is not None:
            upstream.server = os.path.expanduser(check.string(usec["server"],
                                                              upath + ".server"))
        machine.taskmanagers.append(upstream)
    if len({u.address for u in machine.taskmanagers}) != len(machine.taskmanagers):
        check.fail(where + ".taskmanagers", "the same address twice")
    workers = section.get("workers", [])
    if not isinstance(workers, list):
        check.fail(where + ".workers", "expected a list of workers")
    for index, spec in enumerate(workers):
        wpath = "%s.workers[%d]" % (where, index)
        wsec = check.mapping(spec, wpath, SCHEMA["machines.NAME.workers[]"])
        caps = wsec.get("capabilities")
        if not isinstance(caps, list) or not caps or not all(
                isinstance(c, str) and c for c in caps):
            check.fail(wpath + ".capabilities", "expected a non-empty list of names")
        worker = WorkerSpec(capabilities=caps)
        if "slots" in wsec:
            worker.slots = check.integer(wsec["slots"], wpath + ".slots", minimum=1)
        if "attributes" in wsec:
            worker.attributes = check.str_map(wsec["attributes"], wpath + ".attributes")
        machine.workers.append(worker)
    return machine


def _factory(check, data):
    section = check.mapping(data, "factory", SCHEMA["factory"])
    factory = FactoryConfig()
    if section.get("backend") is not None:
        factory.backend = check.string(section["backend"], "factory.backend")
    for key in ("name", "python", "pilot_config", "workdir"):
        if section.get(key) is not None:
            setattr(factory, key, check.string(section[key], "factory." + key))
    for key in ("min", "max"):
        if key in section:
            setattr(factory, key, check.integer(section[key], "factory." + key))
    for key in ("slots", "max_tasks"):
        if section.get(key) is not None:
            setattr(factory, key, check.integer(section[key], "factory." + key, minimum=1))
    for key in ("interval", "idle_exit", "lifetime"):
        if section.get(key) is not None:
            setattr(factory, key, check.number(section[key], "factory." + key))
    if "capabilities" in section:
        caps = section["capabilities"]
        if not isinstance(caps, list) or not caps or not all(
                isinstance(c, str) and c for c in caps):
            check.fail("factory.capabilities", "expected a non-empty list of names")
        factory.capabilities = caps
    if section.get("attributes") is not None:
        factory.attributes = check.str_map(section["attributes"], "factory.attributes")
    if factory.max < max(1, factory.min):
        check.fail("factory.max", "expected at least 1 and at least factory.min (%d)"
                   % factory.min)
    if factory.backend in FACTORY_BACKENDS and section.get(factory.backend) is not None:
        factory.options = check.mapping(section[factory.backend], "factory." + factory.backend)
    return factory


def _user(check, data, where):
    section = check.mapping({} if data is None else data, where, SCHEMA["users.NAME"])
    user = UserPolicy()
    if "weight" in section:
        user.weight = check.number(section["weight"], where + ".weight")
    for key in ("max_slots", "max_queued", "max_queued_bytes"):
        if section.get(key) is not None:
            setattr(user, key, check.integer(section[key], "%s.%s" % (where, key), minimum=1))
    if "priority" in section:
        user.priority = check.boolean(section["priority"], where + ".priority")
    return user


def _policy(check, data, where, base):
    section = check.mapping(data, where, _POLICY_KEYS)
    values = dict(base.__dict__)
    for key in ("max_load", "owner_cpu_limit", "requeue_grace"):
        if key in section:
            values[key] = check.number(section[key], "%s.%s" % (where, key))
    if "min_free_memory" in section:
        values["min_free_memory"] = check.integer(section["min_free_memory"],
                                                  where + ".min_free_memory")
    for key, choices in (("on_owner", ON_OWNER), ("stale", ON_STALE)):
        if key in section:
            if section[key] not in choices:
                check.fail("%s.%s" % (where, key), "expected one of: %s" % ", ".join(choices))
            values[key] = section[key]
    return Policy(**values)


def _staging(check, data):
    section = check.mapping(data, "staging", SCHEMA["staging"])
    staging = StagingConfig()
    if "mode" in section:
        staging.mode = check.string(section["mode"], "staging.mode")
        if staging.mode not in ("auto", "off"):
            check.fail("staging.mode", "expected auto or off, got %r" % staging.mode)
    exclude = section.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(p, str) and p for p in exclude):
        check.fail("staging.exclude", "a list of gitignore-style patterns")
    staging.exclude = list(exclude)
    return staging


def _load(check, data):
    section = check.mapping(data, "load", SCHEMA["load"])
    load = LoadConfig()
    if "placement" in section:
        if section["placement"] not in PLACEMENTS:
            check.fail("load.placement", "expected one of: %s" % ", ".join(PLACEMENTS))
        load.placement = section["placement"]
    if "monitor_interval" in section:
        load.monitor_interval = check.number(section["monitor_interval"],
                                             "load.monitor_interval")
    if "policy" in section:
        load.policy = _policy(check, section["policy"], "load.policy", Policy())
    return load


def _logging(check, data):
    section = check.mapping(data, "logging", SCHEMA["logging"])
    config = LoggingConfig()
    if "cutelog" in section:
        value = section["cutelog"]
        if value is not None:
            try:
                addresses.split_host_port(value, "logging.cutelog")
            except ConfigError:
                check.fail("logging.cutelog", "expected HOST:PORT (or null for no viewer)")
        config.cutelog = value
    if "records" in section:
        config.records = check.string(section["records"], "logging.records")
    if "buffer" in section:
        config.buffer = check.integer(section["buffer"], "logging.buffer", minimum=1)
    if "level" in section:
        level = check.string(section["level"], "logging.level").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            check.fail("logging.level", "expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        config.level = level
    if section.get("file") is not None:
        config.file = check.string(section["file"], "logging.file")
    return config
