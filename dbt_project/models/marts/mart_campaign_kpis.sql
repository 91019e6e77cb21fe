-- The early signals of a campaign's success, per tenant and campaign (utm_campaign):
--   early velocity       revenue from campaign sessions in the first 4 hours after launch
--                        (and in its first 7 days: the outcome mart_campaign_forecast forecasts)
--   24 h return rate     share of users acquired by the campaign (their first session came
--                        through it) who started another session within 24 hours of that
--                        acquiring session
--   social amplification social-referred sessions / direct sessions, tenant-wide, in the
--                        24 hours after launch (word of mouth the campaign set off)
--   cart completion time median seconds from a session's first Product Added to its Order
--                        Completed, in campaign sessions

with

campaigns as not materialized (

    select * from {{ ref('int_campaigns') }}

),

sessions as not materialized (

    select * from {{ ref('int_sessions') }}

),

users as not materialized (

    select * from {{ ref('dim_users') }}

),

early_velocity as (

    -- the first 4 hours, and the first 7 days (the outcome mart_campaign_forecast forecasts)
    select
        campaigns.tenant_id,
        campaigns.campaign,
        coalesce(sum(sessions.revenue) filter (where sessions.session_start_at
            < campaigns.launched_at + interval 4 hour), 0) as revenue_first_4h,
        count(sessions.session_id) filter (where sessions.session_start_at
            < campaigns.launched_at + interval 4 hour) as sessions_first_4h,
        coalesce(sum(sessions.revenue), 0) as revenue_first_7d
    from campaigns
    left join sessions
        on campaigns.tenant_id = sessions.tenant_id
        and campaigns.campaign = sessions.utm_campaign
        and sessions.session_start_at >= campaigns.launched_at
        and sessions.session_start_at < campaigns.launched_at + interval 7 day
    group by all

),

acquired as (

    -- users whose first session came through a campaign, and whether they started another
    -- session within 24 hours of that acquiring session's start
    select
        users.tenant_id,
        users.acquisition_campaign as campaign,
        users.user_key,
        exists (
            select 1
            from sessions as later
            where later.tenant_id = users.tenant_id
                and later.user_key = users.user_key
                and later.session_id <> users.acquisition_session_id
                and later.session_start_at >= acquiring.session_start_at
                and later.session_start_at <= acquiring.session_start_at + interval 24 hour
        ) as returned_within_24h
    from users
    inner join sessions as acquiring
        on users.tenant_id = acquiring.tenant_id
        and users.acquisition_session_id = acquiring.session_id
    where users.acquisition_campaign is not null

),

returns as (

    select
        tenant_id,
        campaign,
        count(*) as acquired_users,
        count(*) filter (where returned_within_24h) as returned_users
    from acquired
    group by all

),

amplification as (

    select
        campaigns.tenant_id,
        campaigns.campaign,
        count(*) filter (where sessions.channel = 'social') as social_sessions_24h,
        count(*) filter (where sessions.channel = 'direct') as direct_sessions_24h
    from campaigns
    left join sessions
        on campaigns.tenant_id = sessions.tenant_id
        and sessions.session_start_at >= campaigns.launched_at
        and sessions.session_start_at < campaigns.launched_at + interval 24 hour
    group by all

),

cart_times as (

    select
        tenant_id,
        utm_campaign as campaign,
        date_diff('second', first_product_added_at, first_order_at) as seconds_to_complete
    from sessions
    where utm_campaign is not null

),

cart_completion as (

    select
        tenant_id,
        campaign,
        quantile_cont(seconds_to_complete, 0.5) as median_cart_completion_s
    from cart_times
    where seconds_to_complete >= 0
    group by all

)

select
    campaigns.tenant_id,
    campaigns.campaign,
    campaigns.launched_at,
    cast(early_velocity.revenue_first_4h as decimal(38, 2)) as early_velocity_revenue_4h,
    early_velocity.sessions_first_4h,
    cast(early_velocity.revenue_first_7d as decimal(38, 2)) as revenue_first_7d,
    coalesce(returns.acquired_users, 0) as acquired_users,
    coalesce(returns.returned_users, 0) as returned_within_24h_users,
    cast(returns.returned_users as double) / nullif(returns.acquired_users, 0)
        as return_rate_24h,
    amplification.social_sessions_24h,
    amplification.direct_sessions_24h,
    cast(amplification.social_sessions_24h as double)
        / nullif(amplification.direct_sessions_24h, 0) as social_amplification,
    cart_completion.median_cart_completion_s
from campaigns
left join early_velocity using (tenant_id, campaign)
left join returns using (tenant_id, campaign)
left join amplification using (tenant_id, campaign)
left join cart_completion using (tenant_id, campaign)
