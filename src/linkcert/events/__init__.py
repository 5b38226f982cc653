"""Click and open events for the platform: stored by the edges, read through the API, sent as
webhook batches to accounts' endpoints and published to a message broker (docs/events.md)."""
