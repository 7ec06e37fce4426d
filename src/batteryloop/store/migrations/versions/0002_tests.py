"""cycling: cycler_tests (one row per stored tester file)

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cycler_tests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('battery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source_name', sa.String(length=255), nullable=False),
    sa.Column('tester', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('cycles', sa.Integer(), nullable=False),
    sa.Column('parquet_path', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_cycler_tests_battery_id_batteries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cycler_tests')),
    sa.UniqueConstraint('sha256', name=op.f('uq_cycler_tests_sha256'))
    )
    with op.batch_alter_table('cycler_tests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cycler_tests_battery_id'), ['battery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cycler_tests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cycler_tests_battery_id'))

    op.drop_table('cycler_tests')
