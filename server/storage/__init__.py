"""Storage: the database handle, schema migrations, Peewee models and the SQL statements."""
