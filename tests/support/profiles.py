"""Hypothesis profiles, registered before pytest reads `--hypothesis-profile`:
`default` keeps the everyday run fast; `thorough` (.ci/run) tries ten times as many inputs."""

from hypothesis import settings

settings.register_profile("default", max_examples=60)
settings.register_profile("thorough", max_examples=600)
settings.load_profile("default")
