"""A run folder that is safe to share, resume and kill: its layout, lock, atomic writes, identity,
checkpoints, records and the environment it ran in; and the child processes a run starts."""
