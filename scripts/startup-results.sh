#!/usr/bin/env bash
# Turns the raw files of one bench-startup.sh run into its results:
#
#   scripts/startup-results.sh DIR
#
# reads (CSV, each with its header line)
#   DIR/ready.csv  method,n,port,ready_ms     one row per instance: when its
#                                             port first served the page, in ms
#                                             since its run started
#   DIR/runs.csv   method,n,total_s,pss_kb    one row per run: until every
#                                             port served it; PSS of the
#                                             instances' Apache (empty: not taken)
#   DIR/meta.csv   key,value                  optional: image, plain_tar_s, ...
# and writes
#   DIR/results.csv      method,label,n,port,ready_ms,total_s,pss_kb (one row
#                        per instance; its run's summary repeated on each)
#   DIR/results.json     {"meta":{..},"runs":[{"method","label","n","total_s",
#                        "pss_kb","ready_ms":[sorted],"p50_ms","p90_ms","max_ms"}]}
#                        (percentiles by nearest rank, as `up` reports them)
#   DIR/startup-cdf.svg  instances ready (count) against time since the run's
#                        start (ms, logarithmic: the seed's loop takes 10-100
#                        times longer than the others), one step curve per
#                        method, for the largest N of the run
# Methods: a (seed loop), b_cold / b_warm (haco-fleet cold / warm), c (host
# floor), s_cold / s_warm (seed definition), w_cold (seed definition as
# written). Needs awk, jq and gnuplot (gnuplot-nox).
set -euo pipefail

die() { echo "startup-results: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: startup-results.sh DIR"
dir=$1
for f in ready.csv runs.csv; do [ -f "$dir/$f" ] || die "$dir/$f is missing"; done
command -v gnuplot >/dev/null || die "gnuplot is not installed (Debian: gnuplot-nox)"
command -v jq >/dev/null || die "jq is not installed"

label_of() {
  case $1 in
    a) echo "seed loop" ;;
    b_cold) echo "haco-fleet cold" ;;
    b_warm) echo "haco-fleet warm" ;;
    c) echo "host floor" ;;
    s_cold) echo "seed definition cold" ;;
    s_warm) echo "seed definition warm" ;;
    w_cold) echo "seed definition as written" ;;
    *) echo "$1" ;;
  esac
}
# Display order of the methods: the seed first, the floor last.
readonly method_order="a s_cold s_warm w_cold b_cold b_warm c"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs in method order, then N ascending: "method n".
tail -n +2 "$dir/runs.csv" | awk -F, -v order="$method_order" '
  BEGIN { k = split(order, o, " "); for (i = 1; i <= k; i++) rank[o[i]] = i }
  NF >= 3 { r = ($1 in rank) ? rank[$1] : 100; printf "%03d %s %d\n", r, $1, $2 }' |
  sort -k1,1n -k3,3n | cut -d' ' -f2- >"$tmp/runs"
[ -s "$tmp/runs" ] || die "$dir/runs.csv has no runs"

# --- results.csv ----------------------------------------------------------------
{
  echo "method,label,n,port,ready_ms,total_s,pss_kb"
  while read -r method n; do
    label=$(label_of "$method")
    IFS=, read -r _ _ total pss < <(awk -F, -v m="$method" -v n="$n" '$1 == m && $2 == n' "$dir/runs.csv" | head -n1)
    awk -F, -v m="$method" -v n="$n" '$1 == m && $2 == n { print $3, $4 }' "$dir/ready.csv" | sort -k2,2g |
      while read -r port ms; do echo "$method,\"$label\",$n,$port,$ms,$total,$pss"; done
  done <"$tmp/runs"
} >"$tmp/results.csv"

# --- results.json ---------------------------------------------------------------
meta='{}'
if [ -f "$dir/meta.csv" ]; then
  meta=$(tail -n +2 "$dir/meta.csv" | jq -R -s 'split("\n") | map(select(length > 0) | split(",")
           | {(.[0]): (.[1:] | join(",") | (tonumber? // .))}) | add // {}')
fi
runs='[]'
while read -r method n; do
  IFS=, read -r _ _ total pss < <(awk -F, -v m="$method" -v n="$n" '$1 == m && $2 == n' "$dir/runs.csv" | head -n1)
  ready=$(awk -F, -v m="$method" -v n="$n" '$1 == m && $2 == n { print $4 }' "$dir/ready.csv" | sort -g |
            jq -s 'map(tonumber)')
  runs=$(jq --arg method "$method" --arg lbl "$(label_of "$method")" --argjson n "$n" \
            --arg total "$total" --arg pss "$pss" --argjson ready "$ready" '
    def rank(p): ($ready | length) as $c | if $c == 0 then null
                 else $ready[([((p / 100 * $c) - 1e-9 | ceil), 1] | max) - 1] end;
    . + [{"method": $method, "label": $lbl, "n": $n,
          total_s: ($total | tonumber? // null), pss_kb: ($pss | tonumber? // null),
          ready_count: ($ready | length), ready_ms: $ready,
          p50_ms: rank(50), p90_ms: rank(90), max_ms: ($ready | max)}]' <<<"$runs")
done <"$tmp/runs"
jq -n --argjson meta "$meta" --argjson runs "$runs" '{meta: $meta, runs: $runs}' >"$tmp/results.json"

# --- startup-cdf.svg ------------------------------------------------------------
largest=$(awk '{ print $2 }' "$tmp/runs" | sort -n | tail -n1)
plot=()
i=0
while read -r method n; do
  [ "$n" = "$largest" ] || continue
  data=$tmp/cdf-$method.dat
  # From 0 at the first ready time (the x axis is logarithmic: no time 0),
  # then one step up per instance at its ready time.
  awk -F, -v m="$method" -v n="$n" '$1 == m && $2 == n { print $4 }' "$dir/ready.csv" | sort -g |
    awk 'NR == 1 { print ($1 > 0 ? $1 : 1), 0 } { print ($1 > 0 ? $1 : 1), NR }' >"$data"
  i=$((i + 1))
  plot+=("'$data' using 1:2 with steps linestyle $i title '$(label_of "$method")'")
done <"$tmp/runs"
joined=$(IFS=,; echo "${plot[*]}")
gnuplot <<GNUPLOT
set terminal svg size 900,480 dynamic font 'sans,12' background '#ffffff'
set output '$tmp/startup-cdf.svg'
set title 'Startup of N=$largest phpinfo instances: ready over time'
set xlabel 'time since the start of the run (ms, logarithmic)'
set ylabel 'instances ready (count)'
set key outside right top box
set grid xtics mxtics ytics
set logscale x 10
set format x '%.0f'
set yrange [0:$largest * 1.05]
set style line 1 linewidth 2 linecolor rgb '#d62728'
set style line 2 linewidth 2 linecolor rgb '#1f77b4'
set style line 3 linewidth 2 linecolor rgb '#2ca02c'
set style line 4 linewidth 2 linecolor rgb '#7f7f7f'
set style line 5 linewidth 2 linecolor rgb '#9467bd'
set style line 6 linewidth 2 linecolor rgb '#8c564b'
set style line 7 linewidth 2 linecolor rgb '#e377c2'
plot $joined
GNUPLOT

# Every result in place at once, or none.
for f in results.csv results.json startup-cdf.svg; do mv "$tmp/$f" "$dir/$f"; done
