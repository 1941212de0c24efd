"""Command-line entry points (installed as detrack-* scripts)."""
