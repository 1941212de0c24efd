"""Developer tools: benchmarks, docs scripts, environment bootstrap."""

from detrack_model.runtime_env import prefer_passive_openmp

# The tools run the model as the commands do: set before any of them imports PyTorch.
prefer_passive_openmp()
