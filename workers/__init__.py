"""ComputeFarm's built-in specialised workers, installed as ``computefarm_workers``.

One module per capability; each holds one ``WorkerPlugin`` subclass.
"""
