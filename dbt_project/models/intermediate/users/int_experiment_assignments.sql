-- One row per (tenant, experiment, user): the variation of the user's first exposure, when it
-- happened, and how many different variations the user saw. A user is the stitched person
-- (user_id, else the user the anonymous id identified as, else the device), as in
-- int_sessions, so a visitor who signs in on a second device stays one unit.
--
-- Incremental by user, like dim_users: the users whose sessions changed since the last run
-- are recomputed whole (a new exposure, or an identify that moves a device's exposures to a
-- user), and keys a device no longer has are emptied (tombstones).

{{ config(tombstone_if='experiment_id is null') }}

with

all_exposures as not materialized (

    select * from {{ ref('stg_experiment_exposures') }}

),

identity as not materialized (

    select * from {{ ref('int_identity_map') }}

),

experiments as not materialized (

    select * from {{ ref('experiments') }}

),

{{ affected_users_cte(ref('int_sessions'), ref('int_identity_map')) }}

exposures as (

    {{ possibly_of_affected_users('all_exposures', ref('int_identity_map')) }}

),

all_in_window as (

    select
        exposures.tenant_id,
        exposures.experiment_id,
        exposures.variation_id,
        exposures.exposed_at,
        exposures.message_id,
        exposures.loaded_at,
        {{ stitched_user_key('exposures.user_id', 'exposures.anonymous_id', 'identity.user_id') }} as user_key
    from exposures
    left join experiments
        on exposures.experiment_id = experiments.experiment_id
    left join identity
        on exposures.tenant_id = identity.tenant_id
        and exposures.anonymous_id = identity.anonymous_id
    -- a registered experiment counts the exposures in its window; one not in the seeds (yet)
    -- counts them all (discovered from the data, see int_experiments)
    where experiments.experiment_id is null
        or (
            exposures.exposed_at >= experiments.start_at
            and (experiments.end_at is null or exposures.exposed_at < experiments.end_at)
        )

),

in_window as (

    {{ of_affected_users('all_in_window') }}

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
        count(distinct variation_id) as variations_seen,
        max(loaded_at) as last_loaded_at
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
    seen.variations_seen > 1 as is_multi_variation,
    seen.last_loaded_at
from first_exposure
inner join seen
    on first_exposure.tenant_id = seen.tenant_id
    and first_exposure.experiment_id = seen.experiment_id
    and first_exposure.user_key = seen.user_key
{{- affected_user_tombstones() }}
