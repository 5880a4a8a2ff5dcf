import os

import pytest
import yaml
from support import Farm


@pytest.fixture(autouse=True, scope="session")
def quiet_farm_config(tmp_path_factory):
    """Farms the tests start without a farm.yaml of their own (majordomo's embedded
    farm) keep their records under the test's temporary directory, feed no viewer."""
    directory = tmp_path_factory.mktemp("farmconfig")
    config = directory / "farm.yaml"
    config.write_text(yaml.safe_dump({"logging": {"records": str(directory / "records.jsonl"),
                                                  "cutelog": None}}))
    previous = os.environ.get("COMPUTEFARM_CONFIG")
    os.environ["COMPUTEFARM_CONFIG"] = str(config)
    # farms without keys use this user's local key set: the tests' own, not ~'s
    os.environ["COMPUTEFARM_LOCAL_KEYS"] = str(directory / "local-keys")
    # ... and their workers record their task trees here, not in this user's folder
    os.environ["COMPUTEFARM_TASK_RECORDS"] = str(directory / "task-records")
    # ... and majordomo's timelines here
    os.environ["COMPUTEFARM_RUNS"] = str(directory / "runs")
    # ... and the blob stores (the TaskManagers', the workers' caches, the digests)
    os.environ["COMPUTEFARM_STORE"] = str(directory / "store")
    os.environ["COMPUTEFARM_CACHE"] = str(directory / "cache")
    os.environ["COMPUTEFARM_DIGESTS"] = str(directory / "digests")
    # ... and the TaskManagers' databases (batches) not named in a farm.yaml
    os.environ["COMPUTEFARM_DATA"] = str(directory / "data")
    # majordomo's embedded farm stops with each run (tests of the kept farm ask for it)
    os.environ["COMPUTEFARM_KEEP_FARM"] = "0"
    yield config
    if previous is None:
        del os.environ["COMPUTEFARM_CONFIG"]
    else:
        os.environ["COMPUTEFARM_CONFIG"] = previous


@pytest.fixture
def farm(tmp_path):
    """A running TaskManager; tests add workers and clients. Everything stops after."""
    farm = Farm(tmp_path)
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()
