-- Retention grids: users grouped by the day (and week) they were first seen, and for each
-- period after that, how many were active and what they spent. Periods with no activity are
-- rows with zeros, so the grid has no holes; periods in the future are left out.

with

users as (

    select * from {{ ref('dim_users') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

grains as (

    {%- for grain, periods in var('retention_periods').items() %}
    select '{{ grain }}' as cohort_grain, {{ periods }} as periods
    {{ "union all" if not loop.last }}
    {%- endfor %}

),

latest as (

    select max(session_start_at) as latest_at from sessions

),

cohorts as (

    select
        users.tenant_id,
        grains.cohort_grain,
        grains.periods,
        date_trunc(grains.cohort_grain, users.first_seen_at) as cohort_start,
        count(*) as cohort_users
    from users
    cross join grains
    group by all

),

grid as (

    select
        cohorts.*,
        unnest(range(0, cohorts.periods + 1)) as period_number
    from cohorts

),

activity as (

    select
        sessions.tenant_id,
        grains.cohort_grain,
        date_trunc(grains.cohort_grain, users.first_seen_at) as cohort_start,
        case grains.cohort_grain
            when 'day' then date_diff('day', date_trunc('day', users.first_seen_at), date_trunc('day', sessions.session_start_at))
            else date_diff('week', date_trunc('week', users.first_seen_at), date_trunc('week', sessions.session_start_at))
        end as period_number,
        count(distinct sessions.user_key) as active_users,
        sum(sessions.revenue) as revenue
    from sessions
    inner join users
        on sessions.tenant_id = users.tenant_id
        and sessions.user_key = users.user_key
    cross join grains
    group by all

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
    end <= latest.latest_at
