-- One row per (tenant, experiment, user): the variation of the user's first exposure, when it
-- happened, and how many different variations the user saw. A user is the stitched person
-- (user_id, else the user the anonymous id identified as, else the device), as in
-- fct_sessions, so a visitor who signs in on a second device stays one unit.

with

exposures as (

    select * from {{ ref('stg_experiment_exposures') }}

),

identity as (

    select * from {{ ref('int_identity_map') }}

),

experiments as (

    select * from {{ ref('experiments') }}

),

in_window as (

    select
        exposures.tenant_id,
        exposures.experiment_id,
        exposures.variation_id,
        exposures.exposed_at,
        exposures.message_id,
        {{ stitched_user_key('exposures.user_id', 'exposures.anonymous_id') }} as user_key
    from exposures
    inner join experiments
        on exposures.experiment_id = experiments.experiment_id
        and exposures.exposed_at >= experiments.start_at
        and (experiments.end_at is null or exposures.exposed_at < experiments.end_at)
    left join identity
        on exposures.tenant_id = identity.tenant_id
        and exposures.anonymous_id = identity.anonymous_id

),

first_exposure as (

    select *
    from in_window
    qualify row_number() over (
        partition by tenant_id, experiment_id, user_key order by exposed_at, message_id
    ) = 1

),

seen as (

    select
        tenant_id,
        experiment_id,
        user_key,
        count(*) as exposures,
        count(distinct variation_id) as variations_seen
    from in_window
    group by tenant_id, experiment_id, user_key

)

select
    first_exposure.tenant_id,
    first_exposure.experiment_id,
    first_exposure.user_key,
    first_exposure.variation_id,
    first_exposure.exposed_at as first_exposed_at,
    seen.exposures,
    seen.variations_seen,
    seen.variations_seen > 1 as is_multi_variation
from first_exposure
inner join seen
    on first_exposure.tenant_id = seen.tenant_id
    and first_exposure.experiment_id = seen.experiment_id
    and first_exposure.user_key = seen.user_key
