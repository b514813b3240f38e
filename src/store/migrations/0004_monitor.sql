-- anteroom-monitor: call-quality aggregates (docs/monitor.md). Only aggregates: no token, room,
-- user, subject or address ever reaches these tables. A row is one clinic, one waiting area and
-- one hour; the monitor adds to it at every flush (several monitors may add to the same row).
--
-- clinic and area are the ids the call tokens carry (text, as in docs/tokens.md), not foreign
-- keys: statistics may arrive for a clinic the store has not heard of, and reports outlive
-- deleted areas. area is '' for staff calls, which wait in no area. hour is hours since the
-- Unix epoch (UTC).
CREATE TABLE monitor_hourly (
    clinic TEXT NOT NULL,
    area TEXT NOT NULL,
    hour BIGINT NOT NULL,
    -- interval reports received
    reports BIGINT NOT NULL DEFAULT 0,
    -- participants' calls (a token's first report), those that used a relay, and those that
    -- ended with a final report (which carries the duration)
    calls BIGINT NOT NULL DEFAULT 0,
    relayed_calls BIGINT NOT NULL DEFAULT 0,
    ended_calls BIGINT NOT NULL DEFAULT 0,
    call_seconds BIGINT NOT NULL DEFAULT 0,
    wait_seconds BIGINT NOT NULL DEFAULT 0,
    -- Histograms in the sparse form of src/proto/stats/hist.h (ar_hist_decode); NULL is empty.
    -- Quantiles read from them are within 3.125 % of the true sample.
    hist_loss {{BLOB}},
    hist_rtt {{BLOB}},
    hist_jitter {{BLOB}},
    hist_bitrate_in {{BLOB}},
    hist_bitrate_out {{BLOB}},
    hist_fps {{BLOB}},
    hist_height {{BLOB}},
    hist_call {{BLOB}},
    hist_wait {{BLOB}},
    PRIMARY KEY (clinic, area, hour)
);
-- Reports read a date range of one clinic.
CREATE INDEX monitor_hourly_clinic_hour ON monitor_hourly (clinic, hour);

-- Counts by category for the same key: 'browser.chrome' (per call), 'profile.low' and
-- 'candidate.relay' (per report). Names come from the monitor's own tables, never from input.
CREATE TABLE monitor_hourly_counts (
    clinic TEXT NOT NULL,
    area TEXT NOT NULL,
    hour BIGINT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (clinic, area, hour, name)
);
