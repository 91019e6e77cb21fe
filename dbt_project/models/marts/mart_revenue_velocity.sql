-- Revenue per minute since each campaign's launch, and cumulative, from sessions carrying the
-- campaign's utm_campaign (session attribution). Campaign '(all)' is the tenant's whole
-- traffic since its first event.
--
-- Incremental per campaign: minutes are recomputed from the first one a changed session can
-- affect (its start; every campaign seen in it, since a merged session may have moved its
-- orders from one campaign to another), or from the minute after the last one kept, to the
-- latest minute; the cumulative revenue continues from the kept minute before. A campaign
-- whose launch moved is rebuilt whole.

{{
    config(
        materialized='incremental',
        replace_scope=[{'keys': ['tenant_id', 'campaign'], 'since': 'minute_at'}],
        tombstone_if='orders is null',
    )
}}

with

sessions as not materialized (

    select * from {{ ref('int_sessions') }}

),

campaigns as not materialized (

    select * from {{ ref('int_campaigns') }}

),

all_campaigns as (

    select tenant_id, campaign, launched_at from campaigns

    union all

    select tenant_id, '(all)' as campaign, min(session_start_at) as launched_at
    from sessions
    group by tenant_id

),

{% if is_incremental() -%}
kept as (

    select
        tenant_id,
        campaign,
        any_value(launched_at) as launched_at,
        max(minute_at) as last_minute
    from {{ this }}
    group by tenant_id, campaign

),

changed_sessions as (

    select tenant_id, session_id, session_start_at, session_end_at, last_loaded_at
    from sessions
    where last_loaded_at > {{ incremental_watermark() }}

),

changed_campaigns as (

    select events.tenant_id, events.utm_campaign as campaign, min(changed.session_start_at) as since
    from {{ ref('int_sessionized_events') }} as events
    inner join changed_sessions as changed
        on events.tenant_id = changed.tenant_id
        and events.session_id = changed.session_id
    where events.utm_campaign is not null
        and events.event_at >= (select min(session_start_at) from changed_sessions)
    group by all

    union all

    select tenant_id, '(all)', min(session_start_at)
    from changed_sessions
    group by tenant_id

),

last_minute as (

    select
        greatest(
            (select max(last_minute) from kept),
            (select {{ utc_minute('max(session_end_at)') }} from changed_sessions)
        ) as last_minute

),

bounds as (

    select
        all_campaigns.tenant_id,
        all_campaigns.campaign,
        all_campaigns.launched_at,
        kept.launched_at as kept_launched_at,
        case
            when kept.launched_at is distinct from all_campaigns.launched_at
                then {{ utc_minute('all_campaigns.launched_at') }}
            else greatest(
                {{ utc_minute('all_campaigns.launched_at') }},
                least(
                    kept.last_minute + interval 1 minute,
                    {{ utc_minute('changed_campaigns.since') }}
                )
            )
        end as recompute_from
    from all_campaigns
    left join kept
        on all_campaigns.tenant_id = kept.tenant_id
        and all_campaigns.campaign = kept.campaign
    left join (
        select tenant_id, campaign, min(since) as since
        from changed_campaigns
        group by tenant_id, campaign
    ) as changed_campaigns
        on all_campaigns.tenant_id = changed_campaigns.tenant_id
        and all_campaigns.campaign = changed_campaigns.campaign

),

carried as (

    select bounds.tenant_id, bounds.campaign, previous.cumulative_revenue
    from bounds
    inner join {{ this }} as previous
        on bounds.tenant_id = previous.tenant_id
        and bounds.campaign = previous.campaign
        and previous.minute_at = bounds.recompute_from - interval 1 minute
    where bounds.kept_launched_at is not distinct from bounds.launched_at

),
{%- else -%}
last_minute as (

    select {{ utc_minute('max(session_end_at)') }} as last_minute from sessions

),

bounds as (

    select
        tenant_id,
        campaign,
        launched_at,
        {{ utc_minute('launched_at') }} as recompute_from
    from all_campaigns

),

carried as (

    select
        null::varchar as tenant_id,
        null::varchar as campaign,
        null::decimal(38, 2) as cumulative_revenue
    where false

),
{%- endif %}

recompute_scope as (

    -- the earliest minute any campaign is recomputed from: the completions and the sessions
    -- read below start there
    select min(recompute_from) as recompute_from from bounds

),

recomputed_completions as (

    -- joined to the scope, not compared with a subquery in the where clause: DuckDB then
    -- skips the row groups of older history (a filter on the scan, known once the scope is)
    -- instead of joining every completion of the history to its session and order first
    select events.*
    from {{ ref('int_sessionized_events') }} as events
    inner join recompute_scope
        on events.event_at >= recompute_scope.recompute_from
    where events.event_name = 'Order Completed'

),

recomputed_sessions as (

    -- a session ends at its last event, so one holding a recomputed completion ends at or
    -- after the scope
    select sessions.*
    from sessions
    inner join recompute_scope
        on sessions.session_end_at >= recompute_scope.recompute_from

),

orders as (

    select
        events.tenant_id,
        sessions.utm_campaign,
        sessions.last_loaded_at,
        {{ utc_minute('events.event_at') }} as minute_at,
        count(distinct events.order_id) as orders,
        sum(events.revenue) as revenue
    from recomputed_completions as events
    inner join recomputed_sessions as sessions
        on events.tenant_id = sessions.tenant_id
        and events.session_id = sessions.session_id
    {{ join_first_completions('events', ref('stg_orders'), 'first_completions') }}
    where {{ counted_completion('events', 'first_completions') }}
    group by all

),

campaign_orders as (

    select
        tenant_id,
        utm_campaign as campaign,
        minute_at,
        orders,
        revenue,
        last_loaded_at
    from orders
    where utm_campaign is not null

    union all

    select tenant_id, '(all)' as campaign, minute_at, orders, revenue, last_loaded_at
    from orders

),

spine as (

    select
        bounds.tenant_id,
        bounds.campaign,
        bounds.launched_at,
        unnest(range(
            bounds.recompute_from,
            last_minute.last_minute + interval 1 minute,
            interval 1 minute
        )) as minute_at
    from bounds
    cross join last_minute

),

per_minute as (

    select
        spine.tenant_id,
        spine.campaign,
        spine.launched_at,
        spine.minute_at,
        coalesce(sum(campaign_orders.orders), 0) as orders,
        coalesce(sum(campaign_orders.revenue), 0) as revenue,
        max(campaign_orders.last_loaded_at) as last_loaded_at
    from spine
    left join campaign_orders
        on spine.tenant_id = campaign_orders.tenant_id
        and spine.campaign = campaign_orders.campaign
        and spine.minute_at = campaign_orders.minute_at
    group by all

)

select
    per_minute.tenant_id,
    per_minute.campaign,
    per_minute.launched_at,
    per_minute.minute_at,
    cast(date_diff('minute', {{ utc_minute('per_minute.launched_at') }}, per_minute.minute_at)
        as integer) as minutes_since_launch,
    cast(per_minute.orders as bigint) as orders,
    cast(per_minute.revenue as decimal(38, 2)) as revenue,
    cast(
        coalesce(carried.cumulative_revenue, 0)
        + sum(per_minute.revenue) over (
            partition by per_minute.tenant_id, per_minute.campaign
            order by per_minute.minute_at
            rows between unbounded preceding and current row
        )
        as decimal(38, 2)
    ) as cumulative_revenue,
    per_minute.last_loaded_at
from per_minute
left join carried
    on per_minute.tenant_id = carried.tenant_id
    and per_minute.campaign = carried.campaign
{%- if is_incremental() %}

-- a campaign whose launch moved: its rows from the earlier launch go too
union all by name

select tenant_id, campaign, {{ utc_minute('kept_launched_at') }} as minute_at
from bounds
where kept_launched_at < launched_at
{%- endif %}
