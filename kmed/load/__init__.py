"""The load harness: many simulated UEs, call models, per-procedure statistics."""
