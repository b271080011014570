"""Pipeline DAGs built from :mod:`components`."""
