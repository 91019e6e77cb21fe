"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``). Each prints its figure and
a ratio against a baseline measured in the same run; none is part of the test suite."""

import sys

from benchmarks import (
    bench_campaign_forecast,
    bench_collector,
    bench_dbt_overhead,
    bench_delivery,
    bench_freshness,
    bench_incremental,
    bench_loader,
    bench_microbatch,
    bench_propensity,
    bench_rowpass,
    bench_serving,
)

if __name__ == "__main__":
    for bench in (
        bench_collector,
        bench_rowpass,
        bench_loader,
        bench_microbatch,
        bench_incremental,
        bench_dbt_overhead,
        bench_serving,
        bench_freshness,
        bench_delivery,
        bench_propensity,
        bench_campaign_forecast,
    ):
        print(f"\n== {bench.__name__} ==", flush=True)
        sys.argv = [bench.__name__]
        bench.main()
