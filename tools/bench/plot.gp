# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# tools/bench/run.sh's plot: requests/s and p99 against client connections, one line
# per L7 path (medians, bars min-max over the rounds).
# gnuplot -e "dat='bench.dat'; png='bench.png'; subtitle='...'" plot.gp
set terminal pngcairo size 1200,480 font "sans,10"
set output png
set multiplot layout 1,2 title "ringmesh L7 benchmark: ".subtitle
set logscale x 2
set xlabel "client connections (wrk -t1, keep-alive)"
set key top right
set grid
stats dat nooutput
n = STATS_blocks
set title "requests/s (median, min-max)"
set ylabel "requests/s"
set yrange [0:*]
plot for [i=0:n-1] dat index i using 1:2:3:4 with yerrorlines lw 2 title columnheader(1)
set title "p99 latency (median, min-max)"
set ylabel "p99 (ms)"
set logscale y
set yrange [*:*]
plot for [i=0:n-1] dat index i using 1:5:6:7 with yerrorlines lw 2 title columnheader(1)
unset multiplot
