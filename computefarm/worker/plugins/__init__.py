"""The built-in worker plugins, one module per capability, each one ``WorkerPlugin``
subclass. Adding a capability is adding one small file here (or, outside this
project, an entry point in the group ``computefarm.workers``)."""
