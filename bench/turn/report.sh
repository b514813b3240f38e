# Sourced by bench/turn/run.sh: prints the side-by-side table and the target ratios from the
# R (results) and WHY (reasons for n/a) arrays. Every figure printed was measured in this run;
# a missing one prints n/a with a numbered reason.

NOTES=()

# cell <server> <key> <reason key>: sets CELL to the value, or to n/a[k] with the reason noted
# once (no command substitution: it would lose the NOTES it adds).
cell() {
  local v=${R[$1,$2]:-} why i
  CELL=$v
  [ -n "$v" ] && return
  why=${WHY[$1,all]:-${WHY[$1,$3]:-not measured}}
  for i in "${!NOTES[@]}"; do
    [ "${NOTES[$i]}" = "$1: $why" ] && { CELL="n/a[$((i + 1))]"; return; }
  done
  NOTES+=("$1: $why")
  CELL="n/a[${#NOTES[@]}]"
}

row() { # row <label> <key> <reason key>
  local a b c
  cell coturn "$2" "$3"
  a=$CELL
  cell anteroom "$2" "$3"
  b=$CELL
  cell bare "$2" "$3"
  c=$CELL
  cell bare-gso "$2" "$3"
  printf '%-44s %13s %13s %13s %13s\n' "$1" "$a" "$b" "$c" "$CELL"
}

# ratio <label> <a server> <a key> <b server> <b key> <target>
ratio() {
  local a=${R[$2,$3]:-} b=${R[$4,$5]:-} v="n/a"
  if [ -n "$a" ] && [ -n "$b" ]; then
    v=$(awk -v a="$a" -v b="$b" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
  fi
  printf '%-52s %8s   %s\n' "$1" "$v" "$6"
}

report() {
  local t s
  echo
  echo "TURN relay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(uname -r))"
  echo "coturn $(turnserver --version 2>/dev/null | head -1); anteroom-turn" \
    "${BENCH_TURN_LABEL:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)}"
  echo "flat out: $FLAT_ALLOCS allocations x $INFLIGHT packets in flight; fixed rate: $RATE pkt/s" \
    "over $RATE_ALLOCS allocations; medians of $ROUNDS interleaved ${SECS} s runs"
  echo
  printf '%-44s %13s %13s %13s %13s\n' "" coturn anteroom-turn bare-forward bare+GSO
  for t in udp tcp tls; do
    for s in 160 1200; do
      row "${t^^} $s B relayed pkt/s" "$t.$s.pps" "$t.$s"
      row "${t^^} $s B CPU us per relayed pkt" "$t.$s.cpu" "$t.$s"
    done
  done
  row "server CPU % at UDP 160 B flat out" udp.160.srvpct udp.160
  row "UDP 160 B CPU us per relayed pkt, $RATE pkt/s" rate.cpu rate
  row "RTT p50 us (UDP 160 B, $RATE pkt/s)" rate.p50 rate
  row "RTT p99 us (UDP 160 B, $RATE pkt/s)" rate.p99 rate
  echo "(RTT of 1000000 us means 1 s or more: the histogram's last bucket)"
  row "loss at $RATE pkt/s" rate.loss rate
  row "RSS KiB at start (no allocation)" rss0 alloc
  row "RSS KiB per allocation at 1k" rss.1000 alloc
  row "RSS KiB per allocation at 5k" rss.5000 alloc
  row "RSS KiB per allocation at 15k" rss.15000 alloc
  row "allocations/s" allocs_per_s alloc
  row "CPU us per allocation (Allocate)" cpu_alloc alloc
  row "CPU us per allocation (+Permission+Channel)" cpu_setup alloc
  echo
  echo "ratios (target)"
  ratio "CPU/pkt UDP 160 B  anteroom / coturn" anteroom udp.160.cpu coturn udp.160.cpu "<= 0.45"
  ratio "CPU/pkt UDP 1200 B anteroom / coturn" anteroom udp.1200.cpu coturn udp.1200.cpu "<= 0.45"
  ratio "CPU/pkt UDP 160 B  anteroom / bare" anteroom udp.160.cpu bare udp.160.cpu "<= 1.2"
  ratio "CPU/pkt UDP 1200 B anteroom / bare" anteroom udp.1200.cpu bare udp.1200.cpu "<= 1.2"
  ratio "RSS/allocation at 15k anteroom / coturn" anteroom rss.15000 coturn rss.15000 "<= 0.10"
  ratio "CPU/allocation anteroom / coturn" anteroom cpu_alloc coturn cpu_alloc "<= 0.125"
  ratio "CPU/allocation incl. channel anteroom / coturn" anteroom cpu_setup coturn cpu_setup \
    "<= 0.125"
  ratio "CPU/pkt 160 B  TLS / TCP, anteroom" anteroom tls.160.cpu anteroom tcp.160.cpu "<= 2.0"
  ratio "CPU/pkt 1200 B TLS / TCP, anteroom" anteroom tls.1200.cpu anteroom tcp.1200.cpu "<= 2.0"
  ratio "CPU/pkt 160 B  TLS / TCP, coturn" coturn tls.160.cpu coturn tcp.160.cpu "(anchor)"
  ratio "CPU/pkt 1200 B TLS / TCP, coturn" coturn tls.1200.cpu coturn tcp.1200.cpu "(anchor)"
  ratio "CPU/pkt UDP 160 B  coturn / bare" coturn udp.160.cpu bare udp.160.cpu "(anchor)"
  ratio "CPU/pkt UDP 160 B  anteroom / bare+GSO" anteroom udp.160.cpu bare-gso udp.160.cpu \
    "(same technique)"
  ratio "CPU/pkt UDP 1200 B anteroom / bare+GSO" anteroom udp.1200.cpu bare-gso udp.1200.cpu \
    "(same technique)"
  ratio "CPU/pkt UDP 160 B  bare+GSO / bare" bare-gso udp.160.cpu bare udp.160.cpu "(anchor)"
  if [ ${#NOTES[@]} -gt 0 ]; then
    echo
    for i in "${!NOTES[@]}"; do echo "[$((i + 1))] ${NOTES[$i]}"; done
  fi
}
