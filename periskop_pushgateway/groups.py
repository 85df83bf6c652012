"""Groups by name: the default group, and how messages name a group."""

# The ungrouped endpoints (/errors, /-/errors) serve the group with this name, and the
# gateway's reports about itself go to it.
DEFAULT_GROUP = ""


def describe_group(group: str) -> str:
    """A group as a log line or a message names it."""
    return f"group {group!r}" if group else "the default group"
