"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``)."""

from benchmarks import bench_loader

if __name__ == "__main__":
    bench_loader.main()
