"""The TaskManager process: the server loop (``server``), its state and records,
scheduling and placement, machines, the gate on the port and log routing."""
