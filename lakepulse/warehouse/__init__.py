"""The warehouse: dbt, the read replica, PostgreSQL serving and the tables dbt reads."""
