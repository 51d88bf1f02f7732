"""The schema, in three modules: ``core`` (cases, reviewers, keys, trails, mail, limits),
``life`` (a case's whole life after intake) and ``proof`` (identity, receipts, escrow).
Everything is imported from here: ``from whistle.store.models import Concern``."""

from whistle.store.models.core import *  # noqa: F403
from whistle.store.models.core import NO_ROWID, Base, new_id, today, utcnow  # noqa: F401
from whistle.store.models.life import *  # noqa: F403
from whistle.store.models.proof import *  # noqa: F403
