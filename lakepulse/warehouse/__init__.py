"""The warehouse layer: dbt, the read replica, publishing, and the tables dbt reads."""
