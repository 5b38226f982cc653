"""Leasing due rows to one process at a time: domains to workers, deliveries to senders.

One statement claims the rows, so it is atomic on SQLite too. On PostgreSQL the candidates
are locked `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint sets without
waiting, in a materialized CTE: as a plain `IN (sub-select)` PostgreSQL may run the sub-select
once per outer row, each run locking the next rows, so that the LIMIT stops limiting and one
process claims the whole backlog. The conditions are repeated in the update, so a row claimed
by someone else between the sub-select and the update is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from linkcert.store.models import Delivery, Domain


def claim_rows(
    session: Session,
    model: type[Domain] | type[Delivery],
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
    owner: str,
    now: datetime,
    lease: timedelta,
) -> list[int]:
    """Lease up to `limit` rows of `model` meeting `conditions` and not leased, the longest
    due first; return their ids."""
    free = or_(model.lease_until.is_(None), model.lease_until < now)
    candidates = (
        select(model.id)
        .where(*conditions, free)
        .order_by(model.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    claimed = session.execute(
        update(model)
        .where(model.id.in_(select(candidates.c.id)), *conditions, free)
        .values(lease_owner=owner, lease_until=now + lease)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in claimed]
