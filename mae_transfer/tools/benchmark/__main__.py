"""`python -m mae_transfer.tools.benchmark TASK ...`: the benchmarks' fresh child processes run this."""
from mae_transfer.tools.benchmark import main

main()
