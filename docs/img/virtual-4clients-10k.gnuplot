set terminal png size 900,500
set grid
set output 'docs/img/virtual-4clients-10k-latency.png'
set title 'canbench: latency, bus time to client'
set xlabel 'latency (µs)'
set ylabel 'frames'
set logscale y
plot 'docs/img/virtual-4clients-10k-latency.csv' using 1:2 with impulses title 'last run, all clients'
