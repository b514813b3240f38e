#!/usr/bin/env bash
# Prints full.sh's RESULT lines side by side, then the ratios the issue sets as targets.
# Usage: report.sh RESULTS-FILE [SCALE_WORKERS]
# CPU figures are the run time of the server's threads (schedstat, in nanoseconds), or utime+stime
# (10 ms ticks) for results from before sigload printed both; anteroom's include its
# nats-server (the bus is part of the relay path), which is also shown apart.
set -uo pipefail
awk -v workers="${2:-?}" '
function get(line, key,   i, n, kv) {
  n = split(line, kv, " ")
  for (i = 1; i <= n; i++) if (index(kv[i], key "=") == 1) return substr(kv[i], length(key) + 2)
  return ""
}
/^RESULT / {
  l = get($0, "label"); p = get($0, "phase"); key = l "/" p; R[key] = $0
  if (p == "rate" && index(l, "@")) { split(l, parts, "@"); sub(/~[0-9]+$/, "", parts[2]); rates[parts[2]] = 1 }
}
function v(key, f) { return (key in R) ? get(R[key], f) : "" }
# The run time (ns) when the line has it for both the server and its bus, else the ticks: a
# tick is 10 ms, 0.5 us a message at 2,000 msg/s for 10 s, more than the differences compared.
function precise(key, unit) { return v(key, unit "_sched_us") != "" && v(key, unit "_bus_sched_us") != "" }
function cpu(key, unit,   a, b) {
  if (!(key in R)) return ""
  if (precise(key, unit)) { a = v(key, unit "_sched_us"); b = v(key, unit "_bus_sched_us") }
  else { a = v(key, unit "_cpu_us"); b = v(key, unit "_bus_cpu_us") }
  return a + b
}
function buscpu(key, unit) { return precise(key, unit) ? v(key, unit "_bus_sched_us") : v(key, unit "_bus_cpu_us") }
function hopn(mode,   i) { for (i = 1; ("hop-" mode "-" i "/rate") in R; i++); return i - 1 }
function hopval(mode, i, f) { return f == "cpu" ? cpu("hop-" mode "-" i "/rate", "msg") : f == "bus" ? buscpu("hop-" mode "-" i "/rate", "msg") : v("hop-" mode "-" i "/rate", f) }
function hoplist(mode,   i, s) { s = ""; for (i = 1; i <= hopn(mode); i++) s = s " " hopval(mode, i, "p50_us"); return s }
function hopmed(mode, f,   n, i, j, t, arr) {
  n = hopn(mode); if (n == 0) return ""
  for (i = 1; i <= n; i++) arr[i] = hopval(mode, i, f) + 0
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
  return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function cell(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
function row(name, vals,   i) {
  printf "%-44s", name
  for (i = 1; i <= ns; i++) printf " %16s", vals[i]
  printf "\n"
}
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
# The CPU ratio of servers a and b at rate r over the relay phase rounds (full.sh
# RELAY_ROUNDS: round 1 is a@r, round k a@r~k): their median, and each round ratio in rl_list
# (empty with one round).
function rounds_ratio(a, b, r,   k, n, q, arr, i, j, t, sfx) {
  n = 0; rl_list = ""
  for (k = 1; ; k++) {
    sfx = k == 1 ? "" : "~" k
    if (!((a "@" r sfx "/rate") in R) && k > 1) break
    q = ratio(cpu(a "@" r sfx "/rate", "msg"), cpu(b "@" r sfx "/rate", "msg"))
    if (q == "") { if (k == 1) continue; break }
    arr[++n] = q; rl_list = rl_list sprintf(" %.2f", q)
  }
  if (n < 2) rl_list = ""
  if (n == 0) return ""
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
  return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function rounds_note() { return rl_list == "" ? "" : "  (median of rounds:" rl_list ")" }
function verdict(x, lim) { return x == "" ? "not measured" : (x <= lim ? "met" : "NOT met") }
END {
  ns = split("bare node-ws peerjs anteroom anteroom-w2 anteroom-w4 anteroom-x2 anteroom-r4 anteroom-p4 anteroom-upgrade anteroom-tls", S, " ")
  printf "\n%-44s", ""
  for (i = 1; i <= ns; i++) printf " %16s", S[i]
  printf "\n"
  for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "/idle", "conns"), "%d"); row("connections held (idle run)", x)
  for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "/idle", "rss_b"), "%.0f"); row("server RSS B per idle connection", x)
  for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "/idle", "bus_rss_b"), "%.0f"); row("  of which in nats-server", x)
  for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "/idle", "per_s"), "%.0f"); row("connects/s (one after another, 2 clients)", x)
  for (i = 1; i <= ns; i++) x[i] = cell(cpu(S[i] "/idle", "connect"), "%.1f"); row("CPU us per connect (+hello+join: anteroom)", x)
  for (i = 1; i <= ns; i++) x[i] = cell(buscpu(S[i] "/idle", "connect"), "%.1f"); row("  of which nats-server", x)
  nr = 0
  for (r in rates) rl[++nr] = r + 0
  for (i = 1; i <= nr; i++) for (j = i + 1; j <= nr; j++) if (rl[j] < rl[i]) { t = rl[i]; rl[i] = rl[j]; rl[j] = t }
  for (k = 1; k <= nr; k++) {
    r = rl[k]
    for (i = 1; i <= ns; i++) x[i] = cell(cpu(S[i] "@" r "/rate", "msg"), "%.1f"); row("CPU us per relayed msg at " r " msg/s", x)
    for (i = 1; i <= ns; i++) x[i] = cell(buscpu(S[i] "@" r "/rate", "msg"), "%.1f"); row("  of which nats-server", x)
    for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "@" r "/rate", "p50_us"), "%d"); row("  latency p50 us", x)
    for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "@" r "/rate", "p99_us"), "%d"); row("  latency p99 us", x)
    for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "@" r "/rate", "loss"), "%.4f"); row("  loss", x)
  }
  for (i = 1; i <= ns; i++) x[i] = cell(v(S[i] "/calls", "per_s"), "%.0f"); row("call set-ups/s (4 KB offer+answer, 4+4 cand.)", x)
  for (i = 1; i <= ns; i++) x[i] = cell(cpu(S[i] "/calls", "call"), "%.0f"); row("CPU us per call set-up", x)

  hs = hopmed("same", "p50_us"); hc = hopmed("cross", "p50_us")
  if (hs != "") {
    printf "\nNATS hop, two nodes of one worker on a two-server NATS cluster, %s msg/s, medians of %d interleaved runs:\n", v("hop-same-1/rate", "offered"), hopn("same")
    printf "  both members on one node: p50 %d us, p99 %d us, CPU %.1f us/msg (nats %.1f); p50 of each run:%s\n", hs, hopmed("same", "p99_us"), hopmed("same", "cpu"), hopmed("same", "bus"), hoplist("same")
    printf "  members on two nodes:     p50 %d us, p99 %d us, CPU %.1f us/msg (nats %.1f); p50 of each run:%s\n", hc, hopmed("cross", "p99_us"), hopmed("cross", "cpu"), hopmed("cross", "bus"), hoplist("cross")
  }
  sc = v("scale/idle", "still_open")
  if (sc != "")
    printf "\nscale: %d of %d connections opened, %d still open %d s later (%d calls) on one node of %s workers; %.0f connects/s; RSS %.0f B per connection (all workers; nats-server %.0f B more); CPU %.1f us per connect (nats %.1f); node RSS %s MiB\n", v("scale/idle", "conns"), v("scale/idle", "of"), sc, v("scale/idle", "held_after_s"), sc / 2, workers, v("scale/idle", "per_s"), v("scale/idle", "rss_b"), v("scale/idle", "bus_rss_b"), cpu("scale/idle", "connect"), buscpu("scale/idle", "connect"), v("scale/idle", "rss_total_mib")

  # PHASES=failover: a node killed (kill -9) under its sessions, its clients resumed on the other
  for (key in R) if (key ~ /\/failover$/) {
    split(key, parts, "/")
    printf "\n%s: %d sessions (%d rooms), %d on the killed node: %d lost, %d resumed, %d failed (+%d closed on the survivor), %d refused 4016, %d retries; first attempt 0.5 s + [0, %s] s after the close, at most %d at once\n", parts[1], v(key, "sessions"), v(key, "rooms"), v(key, "on_a"), v(key, "lost"), v(key, "resumed"), v(key, "failed"), v(key, "b_closed"), v(key, "refused"), v(key, "retries"), v(key, "jitter_s"), v(key, "inflight")
    printf "  first close to last resumed welcome %.2f s; each client close to welcome p50 %d ms, p99 %d ms, max %d ms; hello to welcome p50 %d ms, p99 %d ms\n", v(key, "storm_s"), v(key, "close_to_welcome_p50_ms"), v(key, "p99_ms"), v(key, "max_ms"), v(key, "hello_to_welcome_p50_ms"), v(key, "hello_p99_ms")
    printf "  survivor CPU %.0f us per resume (nats-server %.0f); RSS after %d MiB (nats-server %d MiB); rooms whose relay failed after: %d of %d (of those, through 70 to 190 s after: %d; %d took over 10 s); the clients took %.1f s of CPU over the storm\n", cpu(key, "resume"), buscpu(key, "resume"), v(key, "rss_total_mib"), v(key, "bus_rss_mib"), v(key, "relay_failed"), v(key, "rooms"), v(key, "relay_later"), v(key, "relay_late"), v(key, "clients_cpu_s")
    printf "  rooms relayed, all offers sent at once: right after the storm p50 %.1f s, p99 %.1f s, max %.1f s; the same check again with the survivor quiet: failed %d (through 70 to 190 s after: %d), over 10 s %d, p50 %.1f s, p99 %.1f s, max %.1f s\n", v(key, "relay_p50_s"), v(key, "relay_p99_s"), v(key, "relay_max_s"), v(key, "relay2_failed"), v(key, "relay2_later"), v(key, "relay2_late"), v(key, "relay2_p50_s"), v(key, "relay2_p99_s"), v(key, "relay2_max_s")
  }

  # PHASES=idle: anteroom sessions in rooms, plain and TLS, by number of workers (full.sh)
  nw = 0
  for (key in R) if (key ~ /^idle-w[0-9]+\/idle$/) { split(key, parts, "/"); wl[++nw] = substr(parts[1], 7) + 0 }
  for (i = 1; i <= nw; i++) for (j = i + 1; j <= nw; j++) if (wl[j] < wl[i]) { t = wl[i]; wl[i] = wl[j]; wl[j] = t }
  if (nw) printf "\nidle sessions (a pair per room) by workers:   RSS B per session, all workers (nats-server)   CPU us per connect (nats-server)\n"
  for (i = 1; i <= nw; i++) for (tl = 0; tl < 2; tl++) {
    key = "idle-w" wl[i] (tl ? "-tls" : "") "/idle"
    if (key in R) printf "  %2d worker(s), %-5s %6d held   %8.0f (%4.0f)  = %5.2f KiB   %8.1f (%5.1f)\n", wl[i], tl ? "TLS" : "plain", v(key, "conns"), v(key, "rss_b"), v(key, "bus_rss_b"), v(key, "rss_b") / 1024, cpu(key, "connect"), buscpu(key, "connect")
    # IDLE_HOLD: the same sessions past the first ping of the node, their first frames acknowledged
    if (key in R && v(key, "rss_held_b") != "") printf "  %2d worker(s), %-5s %6d still open %d s later: %8.0f B per session = %5.2f KiB\n", wl[i], tl ? "TLS" : "plain", v(key, "still_open"), v(key, "held_after_s"), v(key, "rss_held_b"), v(key, "rss_held_b") / 1024
  }

  printf "\nratios against the issue 3 targets (one run):\n"
  a = v("anteroom/idle", "rss_b"); printf "  %-58s %8s  <= 0.5    %s\n", "KiB RSS per idle plain connection (session in a room)", cell(a == "" ? "" : a / 1024, "%.2f"), verdict(a == "" ? "" : a / 1024, 0.5)
  # PHASES=idle with IDLE_HOLD: the same bar for the sessions held past the first ping, by workers
  for (i = 1; i <= nw; i++) {
    a = v("idle-w" wl[i] "/idle", "rss_held_b")
    if (a != "") printf "  %-58s %8s  <= 0.5    %s\n", "KiB RSS per idle plain session, " wl[i] " worker(s), past 1st ping", cell(a / 1024, "%.2f"), verdict(a / 1024, 0.5)
  }
  a = v("anteroom-tls/idle", "rss_b"); printf "  %-58s %8s  <= 8      %s\n", "KiB RSS per idle TLS connection (session in a room)", cell(a == "" ? "" : a / 1024, "%.2f"), verdict(a == "" ? "" : a / 1024, 8)
  for (key in R) if (key ~ /^anteroom-tls-.*\/idle$/) {
    a = v(key, "rss_b"); split(key, parts, "/")
    printf "  %-58s %8s  <= 8      %s\n", "KiB RSS per idle TLS connection, " substr(parts[1], 14), cell(a / 1024, "%.2f"), verdict(a / 1024, 8)
    a = cpu(key, "connect"); printf "  %-58s %8s  (no target)\n", "CPU us per TLS connect+hello+join, " substr(parts[1], 14), cell(a, "%.1f")
  }
  a = cpu("anteroom-upgrade/idle", "connect"); printf "  %-58s %8s  <= 50     %s\n", "CPU us per plain connect+upgrade", cell(a, "%.1f"), verdict(a, 50)
  a = cpu("anteroom/idle", "connect"); printf "  %-58s %8s  (<= 50)  %s\n", "CPU us per plain connect+upgrade+hello+join (a session)", cell(a, "%.1f"), verdict(a, 50)
  a = v("anteroom-upgrade/idle", "rss_b"); printf "  %-58s %8s  (<= 0.5) %s\n", "KiB RSS per idle plain connection before hello", cell(a == "" ? "" : a / 1024, "%.2f"), verdict(a == "" ? "" : a / 1024, 0.5)
  for (k = 1; k <= nr; k++) {
    r = rl[k]
    # A server that fell behind (messages still unrelayed at the end) batches more per wake-up and
    # so shows less CPU per message: its ratios say nothing. The machine is shared; run again.
    for (i = 1; i <= ns; i++) {
      l = v(S[i] "@" r "/rate", "loss"); ms = v(S[i] "@" r "/rate", "msg_s")
      if (l != "" && l + 0 > 0.01) printf "  WARNING: %s at %s msg/s lost %.0f%% of its messages (overloaded): the ratios at %s msg/s are not valid\n", S[i], r, 100 * l, r
      else if (ms != "" && ms + 0 < 0.9 * r) printf "  WARNING: %s at %s msg/s relayed only %d msg/s in the window (fell behind): the ratios at %s msg/s are not valid\n", S[i], r, ms, r
    }
    q = rounds_ratio("anteroom", "node-ws", r)
    printf "  %-58s %8s  <= 0.4    %s%s\n", "CPU/msg anteroom / Node ws relay at " r " msg/s", cell(q, "%.2f"), verdict(q, 0.4), rounds_note()
    q = rounds_ratio("anteroom", "bare", r)
    printf "  %-58s %8s  <= 1.3    %s%s\n", "CPU/msg anteroom / bare relay at " r " msg/s", cell(q, "%.2f"), verdict(q, 1.3), rounds_note()
    # A pair on one worker of a two-worker node (w2: each frame also copied to the backup
    # worker), or split over the two (x2: each frame also crosses the bus); four workers placed
    # by the kernel (r4: most pairs split) or by clinic (p4: every pair on one worker).
    for (w = 1; w <= 5; w++) {
      sv = w == 1 ? "anteroom-w2" : w == 2 ? "anteroom-w4" : w == 3 ? "anteroom-x2" : w == 4 ? "anteroom-r4" : "anteroom-p4"
      nm = w == 1 ? "2 workers" : w == 2 ? "4 workers" : w == 3 ? "2 workers split" : w == 4 ? "4 workers, kernel-placed" : "4 workers, placed by clinic"
      q = ratio(cpu(sv "@" r "/rate", "msg"), cpu("node-ws@" r "/rate", "msg"))
      if (q != "") printf "  %-58s %8s  <= 0.4    %s\n", "CPU/msg anteroom " nm " / Node ws at " r " msg/s", cell(q, "%.2f"), verdict(q, 0.4)
      q = ratio(cpu(sv "@" r "/rate", "msg"), cpu("bare@" r "/rate", "msg"))
      if (q != "") printf "  %-58s %8s  <= 1.3    %s\n", "CPU/msg anteroom " nm " / bare at " r " msg/s", cell(q, "%.2f"), verdict(q, 1.3)
    }
    # The physical limit against the same bar: when the bare relay itself is above 0.4 x Node,
    # that target asks for less than one recv and one writev per message cost in this run.
    q = ratio(cpu("bare@" r "/rate", "msg"), cpu("node-ws@" r "/rate", "msg"))
    printf "  %-58s %8s  (the floor for the 0.4 target)\n", "CPU/msg bare relay / Node ws relay at " r " msg/s", cell(q, "%.2f")
    q = ratio(cpu("peerjs@" r "/rate", "msg"), cpu("node-ws@" r "/rate", "msg"))
    printf "  %-58s %8s  (anchor)\n", "CPU/msg PeerJS / Node ws relay at " r " msg/s", cell(q, "%.2f")
  }
  q = ratio(cpu("anteroom/calls", "call"), cpu("node-ws/calls", "call"))
  printf "  %-58s %8s  (no target)\n", "CPU/call set-up anteroom / Node ws relay", cell(q, "%.2f")
  q = ratio(cpu("anteroom/calls", "call"), cpu("peerjs/calls", "call"))
  printf "  %-58s %8s  (no target)\n", "CPU/call set-up anteroom / PeerJS", cell(q, "%.2f")
  printf "  %-58s %8s  >= 200000 %s\n", "connections held by one node", cell(sc, "%d"), sc == "" ? "not measured" : (sc + 0 >= 200000 ? "met" : "NOT met")
  d = (hs == "" || hc == "") ? "" : (hc - hs) / 1000
  printf "  %-58s %8s  <= 1      %s\n", "ms a cross-node hop adds at p50", cell(d, "%.3f"), verdict(d, 1)
  # The issue title: a node death loses no one (each failover run: sessions not resumed with
  # their peer id, and rooms that could not relay afterwards, must both be 0).
  for (key in R) if (key ~ /\/failover$/) {
    split(key, parts, "/")
    gone = v(key, "lost") - v(key, "resumed") + v(key, "relay_failed") + v(key, "relay2_failed")
    printf "  %-58s %8d  = 0      %s\n", "sessions or rooms lost when a node died (" parts[1] ")", gone, gone == 0 ? "met" : "NOT met"
  }
}' "$1"
