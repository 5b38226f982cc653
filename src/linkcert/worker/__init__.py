"""The lifecycle worker: DNS checks, orders, renewals, scheduled per domain."""
