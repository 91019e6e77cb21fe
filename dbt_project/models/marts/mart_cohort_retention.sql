-- Retention grids: users grouped by the day (and week) they were first seen, and for each
-- period after that, how many were active and what they spent. Periods with no activity are
-- rows with zeros, so the grid has no holes; periods in the future are left out.

-- Counted from int_user_activity_days (one row per user and active day), which is maintained
-- incrementally; the grid itself is small and rebuilt each run.

with

activity_days as not materialized (

    select * from {{ ref('int_user_activity_days') }}

),

grains as (

    {%- for grain, periods in var('retention_periods').items() %}
    select '{{ grain }}' as cohort_grain, {{ periods }} as periods
    {{ "union all" if not loop.last }}
    {%- endfor %}

),

latest as (

    select max(activity_date) as latest_date from activity_days

),

cohorts as (

    select
        activity_days.tenant_id,
        grains.cohort_grain,
        grains.periods,
        date_trunc(grains.cohort_grain, activity_days.cohort_date) as cohort_start,
        count(*) as cohort_users
    from activity_days
    cross join grains
    where activity_days.activity_date = activity_days.cohort_date
    group by all

),

grid as (

    select
        cohorts.*,
        unnest(range(0, cohorts.periods + 1)) as period_number
    from cohorts

),

activity as (

    {%- for grain in var('retention_periods') %}
    select
        tenant_id,
        '{{ grain }}' as cohort_grain,
        date_trunc('{{ grain }}', cohort_date) as cohort_start,
        date_diff(
            '{{ grain }}', date_trunc('{{ grain }}', cohort_date), date_trunc('{{ grain }}', activity_date)
        ) as period_number,
        {#- a user has one row per day, so days need no distinct count #}
        {{ 'count(*)' if grain == 'day' else 'count(distinct user_key)' }} as active_users,
        sum(revenue) as revenue
    from activity_days
    group by all
    {{ "union all" if not loop.last }}
    {%- endfor %}

)

select
    grid.tenant_id,
    grid.cohort_grain,
    cast(grid.cohort_start as date) as cohort_start,
    cast(grid.period_number as integer) as period_number,
    grid.cohort_users,
    coalesce(activity.active_users, 0) as active_users,
    coalesce(activity.active_users, 0) / grid.cohort_users as user_retention,
    cast(coalesce(activity.revenue, 0) as decimal(38, 2)) as revenue,
    cast(coalesce(activity.revenue, 0) / grid.cohort_users as double) as revenue_per_cohort_user
from grid
cross join latest
left join activity
    on grid.tenant_id = activity.tenant_id
    and grid.cohort_grain = activity.cohort_grain
    and grid.cohort_start = activity.cohort_start
    and grid.period_number = activity.period_number
where
    case grid.cohort_grain
        when 'day' then grid.cohort_start + to_days(grid.period_number::integer)
        else grid.cohort_start + to_weeks(grid.period_number::integer)
    end <= latest.latest_date
