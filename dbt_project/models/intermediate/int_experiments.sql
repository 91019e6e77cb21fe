-- Every experiment to analyse: the ones registered in seed `experiments`, and every other
-- experiment_id that `Experiment Viewed` events carry, with default settings (vars
-- `discovered_experiment_*`, GrowthBook's defaults). `registered` tells them apart. A discovered
-- experiment's control is its variation named `control`, else its first variation_id in sort
-- order (GrowthBook's variation 0). Experiment ids are global, like the seeds: variations seen
-- under one id in any tenant belong to the same experiment.

with

registered as not materialized (

    select * from {{ ref('experiments') }}

),

assignments as not materialized (

    select * from {{ ref('int_experiment_assignments') }}

),

discovered as (

    select
        assignments.experiment_id,
        coalesce(
            min(assignments.variation_id) filter (
                where lower(assignments.variation_id) = 'control'
            ),
            min(assignments.variation_id)
        ) as control_variation
    from assignments
    anti join registered
        on assignments.experiment_id = registered.experiment_id
    group by assignments.experiment_id

),

final as (

    select
        experiment_id,
        description,
        control_variation,
        metrics,
        alpha,
        sequential_n_star,
        revenue_cap,
        start_at,
        end_at,
        true as registered
    from registered

    union all

    select
        experiment_id,
        'Discovered from Experiment Viewed events; not in seed experiments' as description,
        control_variation,
        '{{ var("discovered_experiment_metrics") }}' as metrics,
        cast({{ var('discovered_experiment_alpha') }} as double) as alpha,
        cast({{ var('discovered_experiment_n_star') }} as double) as sequential_n_star,
        cast(null as double) as revenue_cap,
        cast(null as timestamptz) as start_at,
        cast(null as timestamptz) as end_at,
        false as registered
    from discovered

)

select * from final
