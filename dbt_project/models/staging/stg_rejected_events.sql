-- Events the collector quarantined (raw.events_rejected), without their payload: the reason
-- and when, for the Operations dashboard. Empty until the first event is ever rejected (the
-- Delta table does not exist before that).
-- depends_on: {{ source('raw', 'events_rejected') }}

{%- set rejected_path = lake_path('lake/raw/events_rejected') %}

with

{% if delta_table_exists(rejected_path) -%}
rejected as not materialized (

    select * from {{ source('raw', 'events_rejected') }}

),
{%- else -%}
rejected as (

    select
        null::varchar as tenant_id,
        null::varchar as rejection_id,
        null::timestamptz as received_at,
        null::varchar as reason,
        null::timestamptz as loaded_at
    where false

),
{%- endif %}

renamed as (

    select
        tenant_id,
        rejection_id,
        received_at as rejected_at,
        reason,
        loaded_at
    from rejected

)

select * from renamed
