-- One row per order: the first `Order Completed` event of each (tenant, order_id). SDK retries
-- and repeated confirmation pages can send an order twice; it counts once. Incremental: the
-- orders that newly loaded completions mention are decided again, against the kept row.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'order_id']}],
    )
}}

with

completions as (

    select
        tenant_id,
        order_id,
        message_id,
        visitor_id,
        user_id,
        anonymous_id,
        event_at as ordered_at,
        cast(event_at as date) as order_date,
        revenue,
        currency,
        product_id,
        utm_source,
        utm_medium,
        utm_campaign,
        device_class,
        loaded_at
    from {{ ref('stg_events') }}
    where event_name = 'Order Completed' and order_id is not null
    {%- if is_incremental() %}
        and loaded_at > {{ incremental_watermark('loaded_at') }}
    {%- endif %}

),

candidates as (

    select * from completions

    {% if is_incremental() -%}
    union all by name

    -- the kept rows of those orders, read by row id: the semi join reads two columns of the
    -- history's orders instead of every column of every order
    {{ rows_by_row_id(this, 'completions', {
        'tenant_id': 'completions.tenant_id',
        'order_id': 'completions.order_id',
    }) }}
    {%- endif %}

),

first_completion as (

    select *
    from candidates
    qualify row_number() over (
        partition by tenant_id, order_id order by ordered_at, message_id
    ) = 1

)

select * from first_completion
