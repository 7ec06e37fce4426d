"""grading: inspections (incoming inspection records, each also an `inspected` ledger event)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('inspections',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('battery_id', _ID, nullable=False),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('inspected_by', sa.String(length=200), nullable=True),
    sa.Column('inspected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('visual', sa.Text(), nullable=False),
    sa.Column('ocv_v', sa.Float(), nullable=True),
    sa.Column('cell_voltages_v', sa.Text(), nullable=True),
    sa.Column('insulation_resistance_ohm', sa.Float(), nullable=True),
    sa.Column('insulation_voltage_v', sa.Float(), nullable=True),
    sa.Column('bms_codes', sa.Text(), nullable=True),
    sa.Column('cell_soh_pct', sa.Text(), nullable=True),
    sa.Column('expiry_date', sa.Date(), nullable=True),
    sa.Column('test_ref', sa.String(length=200), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_inspections_battery_id_batteries')),
    sa.ForeignKeyConstraint(['inspector_id'], ['organisations.id'], name=op.f('fk_inspections_inspector_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections'))
    )
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspections_battery_id'), ['battery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspections_battery_id'))

    op.drop_table('inspections')
