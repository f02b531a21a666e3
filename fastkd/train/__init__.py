"""Training and distillation: a run's setup, objective and loop, the teacher, evaluation."""
