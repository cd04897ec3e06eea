"""Whole safetensors checkpoints: the plan, the run (shards, resume, workers), the report."""
