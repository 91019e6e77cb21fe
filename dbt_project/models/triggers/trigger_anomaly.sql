-- Kind `anomaly`: a drop in conversion rate or revenue in the live sliding windows (what the
-- anomaly sensor did before, now a trigger like any other). Per tenant and complete minute t
-- of the 1-minute rows of mart_conversion_windows:
--
-- - current window: the `current_minutes` ending at t; baseline: the `baseline_minutes`
--   before it. Both are compared per visitor: the baseline's rate times the current visitors
--   is what the current window should have had, E.
-- - conversion: converting visitors X against E as a Poisson count whose mean is estimated
--   from the baseline, z = (X - E) / sqrt(E (1 + n_c / n_b)); fires when z < -z_threshold
--   and the rate fell by at least min_relative_drop, provided E >= min_expected.
-- - revenue: the same test on orders, and revenue at most (1 - min_relative_drop) of what the
--   baseline predicts.
--
-- The tenant's current minute is still filling and is never judged; minutes of the last hour
-- are candidates. The trigger's cooldown (per tenant and metric) makes one incident one
-- firing.

with

definitions as (

    {{ trigger_definitions('anomaly', {
        'metrics': 'varchar[]',
        'current_minutes': 'bigint',
        'baseline_minutes': 'bigint',
        'z_threshold': 'double',
        'min_relative_drop': 'double',
        'min_expected': 'double',
    }) }}

),

clocks as not materialized (

    select * from {{ ref('int_tenant_clocks') }}

),

minutes as (

    -- cumulative sums per tenant: a window's total is the difference of two of them
    select
        tenant_id,
        window_end_at as minute_at,
        row_number() over (partition by tenant_id order by window_end_at) as minute_number,
        sum(visitors) over cumulative as visitors,
        sum(converting_visitors) over cumulative as converting_visitors,
        sum(orders) over cumulative as orders,
        sum(revenue) over cumulative as revenue
    from {{ ref('mart_conversion_windows') }}
    where window_minutes = 1
        and window_end_at >= (select min(judged_at) from clocks)
            - interval 1 hour
            - {{ minutes_interval('(select max(current_minutes + baseline_minutes) from definitions) + 1') }}
    window cumulative as (
        partition by tenant_id order by window_end_at rows unbounded preceding
    )

),

windows as (

    select
        definitions.*,
        now_.tenant_id,
        now_.minute_at,
        now_.visitors - cut.visitors as n_c,
        cut.visitors - coalesce(start.visitors, 0) as n_b,
        now_.converting_visitors - cut.converting_visitors as x_c,
        cut.converting_visitors - coalesce(start.converting_visitors, 0) as x_b,
        now_.orders - cut.orders as o_c,
        cut.orders - coalesce(start.orders, 0) as o_b,
        cast(now_.revenue - cut.revenue as double) as r_c,
        cast(cut.revenue - coalesce(start.revenue, 0) as double) as r_b
    from minutes as now_
    inner join clocks
        on now_.tenant_id = clocks.tenant_id
    inner join definitions
        on {{ trigger_applies('definitions', 'now_.tenant_id') }}
    inner join minutes as cut
        on now_.tenant_id = cut.tenant_id
        and cut.minute_number = now_.minute_number - definitions.current_minutes
    left join minutes as start
        on now_.tenant_id = start.tenant_id
        and start.minute_number
            = now_.minute_number - definitions.current_minutes - definitions.baseline_minutes
    where now_.minute_number >= definitions.current_minutes + definitions.baseline_minutes
        and now_.minute_at < {{ utc_minute('clocks.judged_at') }}
        and now_.minute_at >= clocks.judged_at - interval 1 hour

),

tests as (

    select
        *,
        n_c / n_b as ratio,
        x_b * n_c / n_b as expected_conversions,
        o_b * n_c / n_b as expected_orders,
        r_b * n_c / n_b as expected_revenue
    from windows
    where n_b > 0 and n_c > 0

),

conversion_drops as (

    select
        *,
        'conversion_rate' as metric,
        x_c / n_c as current_value,
        x_b / n_b as baseline_value,
        (x_c / n_c) / nullif(x_b / n_b, 0) - 1 as relative_change,
        (x_c - expected_conversions) / sqrt(expected_conversions * (1 + ratio)) as z_score
    from tests
    where expected_conversions >= min_expected

),

revenue_drops as (

    select
        *,
        'revenue' as metric,
        r_c as current_value,
        expected_revenue as baseline_value,
        r_c / expected_revenue - 1 as relative_change,
        (o_c - expected_orders) / sqrt(expected_orders * (1 + ratio)) as z_score
    from tests
    where expected_orders >= min_expected and expected_revenue > 0

),

drops as (

    select * from conversion_drops
    union all by name
    select * from revenue_drops

),

final as (

    select
        trigger,
        tenant_id,
        null::varchar as user_id,
        metric || '|' || strftime(minute_at, '%Y-%m-%dT%H:%M') as occurrence_key,
        minute_at as occurred_at,
        cast(json_object(
            'metric', metric,
            'minute_at', minute_at,
            'current_value', current_value,
            'baseline_value', baseline_value,
            'relative_change', relative_change,
            'z_score', z_score,
            'message', 'lakepulse: ' || replace(metric, '_', ' ') || ' of ' || tenant_id
                || ' dropped ' || cast(round(-relative_change * 100) as bigint) || '% in the window ending '
                || strftime(minute_at, '%Y-%m-%d %H:%M') || ' UTC (z = '
                || cast(round(z_score, 1) as varchar) || ')'
        ) as varchar) as payload
    from drops
    where z_score < -z_threshold
        and relative_change <= -min_relative_drop
        and list_contains(metrics, metric)

)

select * from final
