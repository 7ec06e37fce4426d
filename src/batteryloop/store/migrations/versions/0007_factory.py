"""factory: the alarm log of the NMP recovery lines (append-only)

Revision ID: 0007
Revises: 0006

Chained after 0006 (recycling) so the tree keeps a single head; re-chain if 0006 changes.
"""

import sqlalchemy as sa
from alembic import op

# The alarm log is append-only at the database, as the ledger is: UPDATE and DELETE are refused;
# a clear or an acknowledgement is a new entry pointing at the one that raised the alarm.
_SQLITE_GUARDS = [
    "CREATE TRIGGER factory_alarms_no_update BEFORE UPDATE ON factory_alarms "
    "BEGIN SELECT RAISE(ABORT, 'factory_alarms is append-only'); END",
    "CREATE TRIGGER factory_alarms_no_delete BEFORE DELETE ON factory_alarms "
    "BEGIN SELECT RAISE(ABORT, 'factory_alarms is append-only'); END",
]
_PG_GUARDS = [
    "CREATE FUNCTION factory_alarms_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'factory_alarms is append-only'; END $$",
    "CREATE TRIGGER factory_alarms_append_only BEFORE UPDATE OR DELETE ON factory_alarms "
    "FOR EACH ROW EXECUTE FUNCTION factory_alarms_append_only()",
]

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('factory_alarms',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('line', sa.String(length=64), nullable=False),
    sa.Column('alarm', sa.String(length=200), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('tag', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurrence_id', BigId, nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('severity', sa.String(length=12), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['occurrence_id'], ['factory_alarms.id'], name=op.f('fk_factory_alarms_occurrence_id_factory_alarms')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_factory_alarms')),
    sa.UniqueConstraint('occurrence_id', 'kind', name='uq_factory_alarms_occurrence_kind')
    )
    op.create_index('ix_factory_alarms_line_alarm', 'factory_alarms', ['line', 'alarm'], unique=False)
    op.create_index('ix_factory_alarms_line_at', 'factory_alarms', ['line', 'at'], unique=False)

    guards = _PG_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER factory_alarms_append_only ON factory_alarms")
        op.execute("DROP FUNCTION factory_alarms_append_only()")
    else:
        op.execute("DROP TRIGGER factory_alarms_no_update")
        op.execute("DROP TRIGGER factory_alarms_no_delete")
    op.drop_index('ix_factory_alarms_line_at', table_name='factory_alarms')
    op.drop_index('ix_factory_alarms_line_alarm', table_name='factory_alarms')
    op.drop_table('factory_alarms')
