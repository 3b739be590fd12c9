"""lorafa's version, for the packages built from this tree (the Python wheel)."""

LORAFA_VERSION = "0.1.0"
