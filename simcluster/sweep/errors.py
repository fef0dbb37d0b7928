"""The error of a sweep spec that cannot run."""

from simcluster.errors import SimclusterError


class SweepError(SimclusterError):
    """A sweep spec that cannot run: the message names the file, line and YAML path."""
