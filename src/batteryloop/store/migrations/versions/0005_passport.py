"""passport: static attributes and archive per battery; operators' passport contacts

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('passports',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('battery_id', BigId, nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('archived', sa.Text(), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['battery_id'], ['batteries.id'], name=op.f('fk_passports_battery_id_batteries')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['organisations.id'], name=op.f('fk_passports_updated_by_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passports')),
    sa.UniqueConstraint('battery_id', name=op.f('uq_passports_battery_id'))
    )
    op.create_table('passport_contacts',
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('contact', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_passport_contacts_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('organisation_id', name=op.f('pk_passport_contacts'))
    )


def downgrade() -> None:
    op.drop_table('passport_contacts')
    op.drop_table('passports')
