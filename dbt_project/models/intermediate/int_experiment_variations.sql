-- The planned split of every experiment in int_experiments: seed `experiment_variations` for a
-- registered experiment; for a discovered one, the variations users were assigned to, with an
-- equal share each.

with

experiments as not materialized (

    select * from {{ ref('int_experiments') }}

),

planned as not materialized (

    select * from {{ ref('experiment_variations') }}

),

assignments as not materialized (

    select * from {{ ref('int_experiment_assignments') }}

),

seen as (

    select distinct assignments.experiment_id, assignments.variation_id
    from assignments
    inner join experiments
        on assignments.experiment_id = experiments.experiment_id
    where not experiments.registered

),

final as (

    select experiment_id, variation_id, planned_weight
    from planned

    union all

    select
        experiment_id,
        variation_id,
        1.0 / count(*) over (partition by experiment_id) as planned_weight
    from seen

)

select * from final
