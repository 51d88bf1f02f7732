"""checkpoints (issue 19): the case registry, signed checkpoints and the case heads they record

The registry is filled for the cases already there, oldest first (trust on first use, as
``init`` signs the roster entries already there): from now on a case row deleted leaves
its registry entry behind. The first checkpoint (``flask --app app audit checkpoint`` or the
next ``deadlines`` run) then records every case's chain head.

Revision ID: 0010
Revises: 0009
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BATCH = 5000


def _link(prev: bytes, seq: int, concern_id: str, created: object) -> bytes:
    # The registry's link format, version 1 (whistle.cases.registry._fields and
    # whistle.crypto.chain_hash), written out here so that this migration never changes.
    record = json.dumps([seq, concern_id, str(created)], separators=(",", ":"),
                        ensure_ascii=True).encode()
    return hashlib.sha256(b"whistle:1:chain:" + prev + record).digest()


def upgrade() -> None:
    registry = op.create_table('case_registry',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('created', sa.Date(), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('concern_id')
    )
    op.create_table('checkpoints',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('registry_seq', sa.Integer(), nullable=False),
    sa.Column('registry_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('admin_seq', sa.Integer(), nullable=False),
    sa.Column('admin_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('heads', sa.Integer(), nullable=False),
    sa.Column('heads_digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('checkpoint_heads',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('checkpoint', sa.Integer(), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('concern_id', 'seq')
    )
    with op.batch_alter_table('checkpoint_heads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_heads_checkpoint'), ['checkpoint'],
                              unique=False)
    _register_existing_cases(registry)


def _register_existing_cases(registry: sa.Table) -> None:
    conn = op.get_bind()
    concerns = sa.table('concerns', sa.column('id', sa.String()), sa.column('created', sa.Date()))
    rows = conn.execute(sa.select(concerns.c.id, concerns.c.created)
                        .order_by(concerns.c.created, concerns.c.id)
                        .execution_options(yield_per=_BATCH))
    prev, batch = b"\x00" * 32, []
    for seq, (concern_id, created) in enumerate(rows, start=1):
        link = _link(prev, seq, concern_id, created)
        batch.append({"seq": seq, "concern_id": concern_id, "created": created,
                      "prev_hash": prev, "hash": link})
        prev = link
        if len(batch) == _BATCH:
            conn.execute(registry.insert(), batch)
            batch = []
    if batch:
        conn.execute(registry.insert(), batch)


def downgrade() -> None:
    with op.batch_alter_table('checkpoint_heads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_heads_checkpoint'))
    op.drop_table('checkpoint_heads')
    op.drop_table('checkpoints')
    op.drop_table('case_registry')
