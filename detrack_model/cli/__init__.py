"""Command-line entry points (installed as detrack-* scripts)."""

from detrack_model.runtime_env import prefer_passive_openmp

# Python imports this package before any command in it, however the command starts (its
# detrack-* script, python -m, torchrun -m), so before the command's own imports load PyTorch:
# the last moment the OpenMP wait policy still takes effect. detrack-bag and the demo import
# detrack_model.cli first for the same reason.
prefer_passive_openmp()
