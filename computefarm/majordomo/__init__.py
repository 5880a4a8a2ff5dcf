"""majordomo: doit with a farm behind it (``command``), its runner and progress."""
