"""The paper's evaluation protocol (METHOD.md section 4) as `gmi bench`.

data.py     what is benchmarked: the built-in zoo or an exported / real zoo directory
methods.py  every method as a function (encoded data -> distance matrix [queries, models])
metrics.py  ranks, top-k accuracy, mean rank, per family, swapped pair, bootstrap intervals
plots.py    PNG figures (top-k per method, accuracy against gamma, confusion heat map)
runner.py   runs it all and writes results.json / results.csv / plots / a markdown table
"""
