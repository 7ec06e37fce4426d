"""recycling: dismantlings and their weighed fractions, recycling batches and their outputs

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recycling_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('route', sa.String(length=32), nullable=False),
    sa.Column('route_spec', sa.Text(), nullable=False),
    sa.Column('recycler_id', sa.Integer(), nullable=True),
    sa.Column('processed_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('outputs_basis', sa.String(length=12), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['recycler_id'], ['organisations.id'], name=op.f('fk_recycling_batches_recycler_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recycling_batches')),
    sa.UniqueConstraint('ref', name=op.f('uq_recycling_batches_ref'))
    )
    op.create_table('dismantlings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('battery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dismantler_id', sa.Integer(), nullable=True),
    sa.Column('dismantled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('weighed_mass_kg', sa.Float(), nullable=False),
    sa.Column('chemistry', sa.String(length=32), nullable=False),
    sa.Column('modules', sa.Integer(), nullable=True),
    sa.Column('cells', sa.Integer(), nullable=True),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['recycling_batches.id'], name=op.f('fk_dismantlings_batch_id_recycling_batches')),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_dismantlings_battery_id_batteries')),
    sa.ForeignKeyConstraint(['dismantler_id'], ['organisations.id'], name=op.f('fk_dismantlings_dismantler_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dismantlings')),
    sa.UniqueConstraint('battery_id', name=op.f('uq_dismantlings_battery_id'))
    )
    with op.batch_alter_table('dismantlings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dismantlings_batch_id'), ['batch_id'], unique=False)

    op.create_table('recycling_outputs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stream', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('constituent', sa.String(length=32), nullable=False),
    sa.Column('mass_kg', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['recycling_batches.id'], name=op.f('fk_recycling_outputs_batch_id_recycling_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recycling_outputs'))
    )
    with op.batch_alter_table('recycling_outputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recycling_outputs_batch_id'), ['batch_id'], unique=False)

    op.create_table('dismantled_fractions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('dismantling_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fraction', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('material', sa.String(length=32), nullable=True),
    sa.Column('mass_kg', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['dismantling_id'], ['dismantlings.id'], name=op.f('fk_dismantled_fractions_dismantling_id_dismantlings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dismantled_fractions'))
    )
    with op.batch_alter_table('dismantled_fractions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dismantled_fractions_dismantling_id'), ['dismantling_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dismantled_fractions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dismantled_fractions_dismantling_id'))

    op.drop_table('dismantled_fractions')
    with op.batch_alter_table('recycling_outputs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recycling_outputs_batch_id'))

    op.drop_table('recycling_outputs')
    with op.batch_alter_table('dismantlings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dismantlings_batch_id'))

    op.drop_table('dismantlings')
    op.drop_table('recycling_batches')
