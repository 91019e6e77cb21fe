-- Campaigns (utm_campaign values) per tenant and when each launched: from seed
-- campaign_launches when listed there, else the campaign's first session.

with

sessions as (

    select * from {{ ref('int_sessions') }}
    where utm_campaign is not null

),

launches as not materialized (

    select * from {{ ref('campaign_launches') }}

),

first_seen as (

    select tenant_id, utm_campaign, min(session_start_at) as first_session_at
    from sessions
    group by tenant_id, utm_campaign

)

select
    first_seen.tenant_id,
    first_seen.utm_campaign as campaign,
    coalesce(launches.launched_at, first_seen.first_session_at) as launched_at,
    launches.launched_at is not null as launch_from_seed
from first_seen
left join launches
    on first_seen.tenant_id = launches.tenant_id
    and first_seen.utm_campaign = launches.utm_campaign
