"""What every part of a run stands on: a run folder that is safe to share, resume and kill (its
layout, lock, atomic writes, identity, checkpoints, records, the environment it ran in), the
run's random streams, the child processes it starts and its progress output. data/ and
pipelines/ import from here, never from train/."""
