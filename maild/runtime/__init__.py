"""The composition root, the daemon's roles, the scheduler and leases between processes."""
