"""The one error every topology mistake raises."""


class TopologyError(ValueError):
    """An unknown family, bad parameters or a bad graph file: the message says which and what is valid."""
