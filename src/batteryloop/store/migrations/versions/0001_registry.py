"""registry: organisations, batteries, identifiers, ledger, lineage

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

# The ledger is append-only at the database too: UPDATE and DELETE on events are refused. Someone
# with owner rights can still drop these triggers; `batteryloop verify` catches what they then do.
_SQLITE_GUARDS = [
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END",
]
_PG_GUARDS = [
    "CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'events are append-only'; END $$",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION events_append_only()",
]


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('name', name=op.f('uq_organisations_name')),
    sa.UniqueConstraint('uid', name=op.f('uq_organisations_uid'))
    )
    op.create_table('batteries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('chemistry', sa.String(length=32), nullable=True),
    sa.Column('rated_capacity_ah', sa.Float(), nullable=True),
    sa.Column('rated_energy_wh', sa.Float(), nullable=True),
    sa.Column('nominal_voltage_v', sa.Float(), nullable=True),
    sa.Column('mass_kg', sa.Float(), nullable=True),
    sa.Column('manufacturer_id', sa.Integer(), nullable=True),
    sa.Column('manufactured_on', sa.Date(), nullable=True),
    sa.Column('manufacturing_place', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('eu_status', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('head_seq', sa.Integer(), nullable=False),
    sa.Column('head_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['organisations.id'], name=op.f('fk_batteries_manufacturer_id_organisations')),
    sa.ForeignKeyConstraint(['owner_id'], ['organisations.id'], name=op.f('fk_batteries_owner_id_organisations')),
    sa.ForeignKeyConstraint(['parent_id'], ['batteries.id'], name=op.f('fk_batteries_parent_id_batteries')),
    sa.ForeignKeyConstraint(['responsible_id'], ['organisations.id'], name=op.f('fk_batteries_responsible_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batteries')),
    sa.UniqueConstraint('code', name=op.f('uq_batteries_code')),
    sa.UniqueConstraint('uid', name=op.f('uq_batteries_uid'))
    )
    with op.batch_alter_table('batteries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batteries_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batteries_state'), ['state'], unique=False)

    op.create_table('organisation_roles',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_organisation_roles_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('organisation_id', 'role', name=op.f('pk_organisation_roles'))
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('battery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=48), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=64), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['organisations.id'], name=op.f('fk_events_actor_id_organisations')),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_events_battery_id_batteries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('battery_id', 'seq', name='uq_events_battery_seq')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_actor', ['actor_id'], unique=False)

    op.create_table('identifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('battery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_identifiers_battery_id_batteries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identifiers')),
    sa.UniqueConstraint('scheme', 'value', name=op.f('uq_identifiers_scheme'))
    )
    with op.batch_alter_table('identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identifiers_battery_id'), ['battery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identifiers_value'), ['value'], unique=False)

    op.create_table('lineage',
    sa.Column('child_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('relation', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['batteries.id'], name=op.f('fk_lineage_child_id_batteries')),
    sa.ForeignKeyConstraint(['parent_id'], ['batteries.id'], name=op.f('fk_lineage_parent_id_batteries')),
    sa.PrimaryKeyConstraint('child_id', 'parent_id', name=op.f('pk_lineage'))
    )
    with op.batch_alter_table('lineage', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_parent', ['parent_id'], unique=False)

    guards = _PG_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_update")
        op.execute("DROP TRIGGER events_no_delete")
    with op.batch_alter_table('lineage', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_parent')

    op.drop_table('lineage')
    with op.batch_alter_table('identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identifiers_value'))
        batch_op.drop_index(batch_op.f('ix_identifiers_battery_id'))

    op.drop_table('identifiers')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_actor')

    op.drop_table('events')
    op.drop_table('organisation_roles')
    with op.batch_alter_table('batteries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batteries_state'))
        batch_op.drop_index(batch_op.f('ix_batteries_parent_id'))

    op.drop_table('batteries')
    op.drop_table('organisations')
