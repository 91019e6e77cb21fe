-- What the campaign forecast reads, one row per tenant and campaign: the early signals of
-- mart_campaign_kpis, the revenue of the campaign's sessions started in its first 7 days so
-- far (its day-7 revenue once the 7 days are over), and the tenant's clock.

with

kpis as (

    select * from {{ ref('mart_campaign_kpis') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}
    where utm_campaign is not null

),

clocks as (

    select * from {{ ref('int_tenant_clocks') }}

),

revenue_7d as (

    select
        kpis.tenant_id,
        kpis.campaign,
        coalesce(sum(sessions.revenue), 0) as revenue_7d
    from kpis
    left join sessions
        on kpis.tenant_id = sessions.tenant_id
        and kpis.campaign = sessions.utm_campaign
        and sessions.session_start_at >= kpis.launched_at
        and sessions.session_start_at < kpis.launched_at + interval 7 day
    group by all

)

select
    kpis.tenant_id,
    kpis.campaign,
    kpis.launched_at,
    clocks.judged_at as clock,
    cast(kpis.early_velocity_revenue_4h as double) as revenue_4h,
    cast(revenue_7d.revenue_7d as double) as revenue_7d,
    kpis.social_amplification,
    kpis.return_rate_24h,
    kpis.median_cart_completion_s / 60.0 as cart_completion_minutes
from kpis
inner join revenue_7d using (tenant_id, campaign)
inner join clocks using (tenant_id)
