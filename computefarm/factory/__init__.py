"""farm-factory: pilot workers on an engine (SLURM, ssh, this machine), as many as
the TaskManager's demand asks for, between a minimum and a maximum."""
