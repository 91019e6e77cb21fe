-- One row per event: bronze deduplicated on (tenant_id, message_id), typed and renamed for
-- the models downstream. The first load of a message wins, as in the loader (and Segment): a
-- copy sent again, even days later with another timestamp or device, is a duplicate and
-- changes nothing downstream. UTM fields and the page path that
-- the event's context lacks (server-side tracking, raw HTTP, most mobile SDKs) are read from its
-- page URL; done here rather than in bronze so that bronze keeps what was sent and a replay of
-- rows already stored gets the same answer. Incremental: a run reads only the
-- bronze rows loaded since the last one (Delta file statistics on loaded_at skip the rest) and
-- appends those whose message it does not hold yet, found by the stored message key.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

with

source as (

    select * from {{ source('raw', 'events') }}
    {% if is_incremental() -%}
    where loaded_at > {{ incremental_watermark('loaded_at') }}
    {%- endif %}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by tenant_id, message_id
        order by loaded_at
    ) = 1

),

{%- if is_incremental() %}

held_messages as (

    -- the kept rows whose message key a loaded message has: the scan of the history reads
    -- the 8-byte key alone, and the ids of those few rows, which tell apart two messages
    -- that share a key (new_messages)
    {{ rows_by_row_id(this, 'deduplicated', {
        'message_key': message_key('deduplicated.tenant_id', 'deduplicated.message_id')
    }) }}

),

{%- endif %}

new_messages as (

    select deduplicated.*
    from deduplicated
    {%- if is_incremental() %}
    -- a message already held (its first copy, or a re-read load) is not appended again
    anti join held_messages
        on deduplicated.tenant_id = held_messages.tenant_id
        and deduplicated.message_id = held_messages.message_id
    {%- endif %}

),

renamed as (

    select
        -- ids
        tenant_id,
        message_id,
        {{ message_key('tenant_id', 'message_id') }} as message_key,
        coalesce(user_id, anonymous_id) as visitor_id,
        coalesce(anonymous_id, user_id) as device_id,
        user_id,
        anonymous_id,

        -- what happened
        type as event_type,
        coalesce(event, type) as event_name,

        -- when (UTC)
        "timestamp"::timestamptz as event_at,
        original_timestamp::timestamptz as original_at,
        sent_at::timestamptz as sent_at,
        received_at::timestamptz as received_at,
        loaded_at::timestamptz as loaded_at,
        event_date,

        -- where from: a field the context lacks is read from the page URL (the context wins)
        {{ context_or_url('page_path', url_path('page_url')) }} as page_path,
        page_url,
        page_referrer,
        page_title,
        {%- for field in ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content'] %}
        {{ context_or_url(field, url_query_parameter('page_url', field)) }} as {{ field }},
        {%- endfor %}
        device_class,
        locale,
        library,

        -- commerce and experiments
        order_id,
        cast(revenue as decimal(18, 2)) as revenue,
        currency,
        product_id,
        experiment_id,
        variation_id,

        -- identity
        group_id,
        previous_id,

        -- payloads (JSON)
        properties,
        traits

    from new_messages

)

select * from renamed
{%- if not is_incremental() %}
-- in time order, so the small time ranges later runs read skip most row groups
order by event_at
{%- endif %}
