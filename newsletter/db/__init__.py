"""Database: models, engine factory, migrations."""
