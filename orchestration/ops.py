"""Operations an operator starts by hand from the Dagster UI (Launchpad), with the same code
as the CLI.

Note for privacy reviews: Dagster stores a run's config, so the erasure job leaves the user id
in Dagster's run storage (`$DAGSTER_HOME`). `lakepulse erase` leaves no trace at all; prefer it,
or delete the run afterwards (`dagster run delete RUN_ID`)."""

from dagster import Config, OpExecutionContext, op

from lakepulse.operations.erasure import erase_user
from orchestration.resources import LakepulseResource


class ErasureConfig(Config):
    """The request: which tenant's user to erase (the user_id the SDK sends)."""

    tenant_id: str
    user_id: str


@op(
    description="Erase one user's events from the landing log, bronze (with old file "
    "versions) and every mart, then write an audit record: `lakepulse erase`, as a job.",
)
def erase_user_op(
    context: OpExecutionContext, config: ErasureConfig, lakepulse: LakepulseResource
) -> None:
    settings = lakepulse.settings
    report = erase_user(
        settings,
        config.tenant_id,
        config.user_id,
        progress=context.log.info,
    )
    context.log.info(
        f"erased {report.identities} identities: {report.landing_lines_removed} landing lines, "
        f"{report.bronze_rows_removed} bronze rows, {report.rejected_rows_removed} rejected rows"
    )
