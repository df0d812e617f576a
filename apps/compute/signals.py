"""What compute tells the areas built on it (storage, network) about instances."""

from django.dispatch import Signal

# Sent inside the transaction that marks an instance deleted (its domain is gone): receivers
# let go of what was plugged into it. Arguments: instance.
instance_deleted = Signal()
