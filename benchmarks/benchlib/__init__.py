"""The benchmark harness behind benchmarks/bench.py (`make bench`, `make bench-smoke`), one
module per concern, each built on the ones before it:

    machine.py    processes started and stopped, /proc readings (CPU, RSS, descriptors,
                  the other processes' load), free ports, CPU pinning
    targets.py    our proxy, nginx, HAProxy and direct: configs, start, backends, the tools
    scenarios.py  what each scenario runs against a target and what figure it returns
    run.py        the run's settings, phases per worker count, rounds, one measurement
    report.py     the samples turned into <name>.md (tables, goal lines, plots) and .json

bench.py is the command line. Standard library only (Debian's /usr/bin/python3).
"""
