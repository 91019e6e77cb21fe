-- Kind `campaign_forecast` (below): tenant-level; a running campaign whose day-7 revenue
-- forecast (mart_campaign_forecast) has an 80 % interval whose upper end is below `below`:
-- even the optimistic end misses the target, so act while the campaign runs. One occurrence
-- per campaign (occurrence_key: the campaign; the payload's `subject` too, so campaigns cool
-- down apart): it fires once, the first build its interval falls under the target. The payload
-- says what moved the forecast (`drivers`, `main_driver`).

with

definitions as (

    {{ trigger_definitions('campaign_forecast', {'below': 'double'}) }}

),

forecasts as (

    select * from {{ ref('mart_campaign_forecast') }}
    where status = 'running'
        and forecast_high is not null

),

final as (

    select
        definitions.trigger,
        forecasts.tenant_id,
        null::varchar as user_id,
        forecasts.campaign as occurrence_key,
        forecasts.forecast_as_of as occurred_at,
        cast(json_object(
            'subject', 'campaign|' || forecasts.campaign,
            'metric', 'revenue_7d',
            'campaign', forecasts.campaign,
            'launched_at', forecasts.launched_at,
            'forecast_as_of', forecasts.forecast_as_of,
            'below', definitions.below,
            'forecast_revenue_7d', forecasts.forecast_revenue_7d,
            'forecast_low', forecasts.forecast_low,
            'forecast_high', forecasts.forecast_high,
            'interval_level', forecasts.interval_level,
            'revenue_4h', forecasts.revenue_4h,
            'revenue_to_date', forecasts.revenue_to_date,
            'training_campaigns', forecasts.training_campaigns,
            'drivers', json(forecasts.drivers),
            'main_driver', forecasts.main_driver,
            'message', 'lakepulse: campaign ' || forecasts.campaign || ' of ' || forecasts.tenant_id
                || ' is forecast to make ' || cast(round(forecasts.forecast_revenue_7d) as bigint)
                || ' by day 7 (' || cast(round(forecasts.interval_level * 100) as bigint)
                || ' % interval ' || cast(round(forecasts.forecast_low) as bigint) || ' to '
                || cast(round(forecasts.forecast_high) as bigint) || '), below the target '
                || cast(definitions.below as varchar) || coalesce('; moved most by '
                || forecasts.main_driver, '')
        ) as varchar) as payload
    from forecasts
    inner join definitions
        on {{ trigger_applies('definitions', 'forecasts.tenant_id') }}
    where forecasts.forecast_high < definitions.below

)

select * from final
