"""Alembic environment of the results store.  There is no alembic.ini: `quest_lab.store_db` builds the
config and passes an open connection (inside its transaction and lock) as `config.attributes["connection"]`.
Run migrations with `quest-lab db upgrade [--store URL]`."""
from alembic import context

from quest_lab.store_tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("quest-lab migrations run through quest_lab.store_db (`quest-lab db upgrade --store URL`)")
context.configure(connection=connection, target_metadata=Base.metadata, transactional_ddl=True,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
