#!/usr/bin/env bash
# startup-results.sh over a canned run of three methods at N=3 and one at
# N=1: exact CSV rows, nearest-rank percentiles in the JSON, and an SVG that
# parses as XML with one labelled curve per method of the largest N.
set -euo pipefail
results=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "startup_results_test: $*" >&2; exit 1; }

cat >"$dir/ready.csv" <<'CSV'
method,n,port,ready_ms
a,3,10001,900.5
a,3,10002,1500
a,3,10003,2100
b_warm,3,10001,200
b_warm,3,10003,260
b_warm,3,10002,250
c,3,10001,100
c,3,10002,120
c,3,10003,130
c,1,10001,90
CSV
cat >"$dir/runs.csv" <<'CSV'
method,n,total_s,pss_kb
c,1,0.09,
b_warm,3,0.26,20000
a,3,2.10,30000
c,3,0.13,10000
CSV
printf 'key,value\nimage,/images/php.tar.gz\nplain_tar_s,0.81\n' >"$dir/meta.csv"

"$results" "$dir" || fail "startup-results.sh failed"

expected='method,label,n,port,ready_ms,total_s,pss_kb
a,"seed loop",3,10001,900.5,2.10,30000
a,"seed loop",3,10002,1500,2.10,30000
a,"seed loop",3,10003,2100,2.10,30000
b_warm,"haco-fleet warm",3,10001,200,0.26,20000
b_warm,"haco-fleet warm",3,10002,250,0.26,20000
b_warm,"haco-fleet warm",3,10003,260,0.26,20000
c,"host floor",1,10001,90,0.09,
c,"host floor",3,10001,100,0.13,10000
c,"host floor",3,10002,120,0.13,10000
c,"host floor",3,10003,130,0.13,10000'
[ "$(cat "$dir/results.csv")" = "$expected" ] || { diff <(echo "$expected") "$dir/results.csv" >&2; fail "results.csv differs"; }

summary=$(jq -c '[.meta.image, .meta.plain_tar_s] + [.runs[] | [.method, .n, .total_s, .pss_kb, .ready_ms, .p50_ms, .p90_ms, .max_ms]]' \
            "$dir/results.json")
expected_json='["/images/php.tar.gz",0.81,["a",3,2.1,30000,[900.5,1500,2100],1500,2100,2100],["b_warm",3,0.26,20000,[200,250,260],250,260,260],["c",1,0.09,null,[90],90,90,90],["c",3,0.13,10000,[100,120,130],120,130,130]]'
[ "$summary" = "$expected_json" ] || fail "results.json: $summary, expected $expected_json"

svg=$dir/startup-cdf.svg
xmllint --noout "$svg" || fail "startup-cdf.svg is not well-formed XML"
curves=$(xmllint --xpath '//*[local-name()="g"][starts-with(@id,"gnuplot_plot_")]/*[local-name()="title"]/text()' "$svg" |
           tr '\n' '|')
[ "$curves" = "seed loop|haco-fleet warm|host floor|" ] || fail "curves: $curves"
# The picture is of the largest N (3), not of the N=1 run.
grep -q 'N=3 ' "$svg" || fail "the title does not name N=3"
echo "startup_results_test: ok"
