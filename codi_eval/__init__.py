"""codi-eval."""
