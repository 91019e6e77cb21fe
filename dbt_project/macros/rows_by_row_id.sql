{#-
    The rows of the table `relation` that match a row of `keys` on `on` (a mapping of
    `relation`'s columns to SQL expressions over `keys`), read by row id: the semi join reads
    only the columns in `on`, and the other columns are read only of the rows it keeps. A semi
    join on the rows themselves reads every column of every row first (DuckDB materializes a
    scan's columns before a join filters it): with a few thousand of millions kept, most of the
    time of a model (0.3 s of 0.45 for mart_buyer_signals at 1.8 M users).
-#}
{% macro rows_by_row_id(relation, keys, on) -%}
    select matching.*
    from {{ relation }} as matching
    where matching.rowid in (
        select candidate.rowid
        from {{ relation }} as candidate
        semi join {{ keys }}
            on {% for column, expression in on.items() -%}
            candidate.{{ column }} = {{ expression }}
            {%- if not loop.last %}
            and {% endif %}
            {%- endfor %}
    )
{%- endmacro %}
