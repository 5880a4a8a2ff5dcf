import pytest

from support import Farm


@pytest.fixture
def farm(tmp_path):
    """A running TaskManager; tests add workers and clients. Everything stops after."""
    farm = Farm(tmp_path)
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()
