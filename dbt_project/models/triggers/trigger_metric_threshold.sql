-- Kind `metric_threshold`: a tenant-level condition on mart_conversion_windows: the `metric`
-- of the `window_minutes` window `below` (or `above`) a value, with at least `min_visitors`
-- visitors in the window, for example the 5-minute conversion_rate below 0.01 with at least
-- 200 visitors. One occurrence per metric and complete minute in the last hour (the tenant's
-- current minute is still filling), and the filling minute as well for a count or a sum above
-- a value, which more events can only raise; the trigger's cooldown makes one incident one
-- firing.

with

definitions as (

    {{ trigger_definitions('metric_threshold', {
        'metric': 'varchar',
        'window_minutes': 'bigint',
        'below': 'double',
        'above': 'double',
        'min_visitors': 'double',
    }) }}

),

clocks as not materialized (

    select * from {{ ref('int_tenant_clocks') }}

),

recent_windows as (

    select * from {{ ref('mart_conversion_windows') }}
    where window_end_at >= (select min(judged_at) from clocks) - interval 2 hour

),

measured as (

    select
        definitions.*,
        recent_windows.tenant_id,
        recent_windows.window_end_at,
        recent_windows.visitors,
        case definitions.metric
            when 'conversion_rate' then recent_windows.conversion_rate
            when 'visitors' then recent_windows.visitors
            when 'converting_visitors' then recent_windows.converting_visitors
            when 'orders' then recent_windows.orders
            when 'revenue' then recent_windows.revenue
            when 'revenue_per_visitor' then recent_windows.revenue / nullif(recent_windows.visitors, 0)
        end::double as metric_value
    from recent_windows
    inner join clocks
        on recent_windows.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'recent_windows.tenant_id') }}
        and recent_windows.window_minutes = definitions.window_minutes
    where (
            recent_windows.window_end_at < {{ utc_minute('clocks.judged_at') }}
            -- the filling minute too, where the condition can only stay true as it fills: a
            -- count or a sum `above` a value (an alert then waits for no minute to end)
            or (
                definitions.below is null
                and definitions.metric in ('visitors', 'converting_visitors', 'orders', 'revenue')
            )
        )
        and recent_windows.window_end_at >= clocks.judged_at - interval 1 hour

),

final as (

    select
        trigger,
        tenant_id,
        null::varchar as user_id,
        metric || '|' || strftime(window_end_at, '%Y-%m-%dT%H:%M') as occurrence_key,
        window_end_at as occurred_at,
        cast(json_object(
            'metric', metric,
            'value', metric_value,
            'below', below,
            'above', above,
            'visitors', visitors,
            'window_minutes', window_minutes,
            'window_end_at', window_end_at
        ) as varchar) as payload
    from measured
    where visitors >= coalesce(min_visitors, 0)
        and (metric_value < below or metric_value > above)

)

select * from final
