// The long-run failure Monte Carlo (podsim/failures.hpp): exact cases without failures,
// determinism for a seed and any thread count, per-run bounds on the goodput, spares, and the
// robustness fixes (#1 threads that cannot start, #2 runs that never finish and stopping early,
// #13 spare counts). Each expectation derived in a comment.
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "check.hpp"
#include "podsim/errors.hpp"
#include "podsim/failures.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

constexpr double kHour = 3600.0, kDay = 86400.0;

// 1024 devices failing once per 10,000 h each: the job fails every 10,000 / 1024 h = 9.8 h.
// 30 days of useful compute, checkpoints every hour taking 60 s, restarts of 10 min.
FailureModel typical() {
  FailureModel m;
  m.devices = 1024;
  m.class_rates_per_s = {1.0 / (10'000 * kHour)};
  m.class_spare_devices = {1};
  m.useful_time_s = 30 * kDay;
  m.max_wall_s = 100 * 30 * kDay;
  m.checkpoint_interval_s = kHour;
  m.checkpoint_write_s = 60;
  m.restart_s = 600;
  m.runs = 2000;
  m.seed = 7;
  return m;
}

bool same_bits(const LongRuns& a, const LongRuns& b) {
  auto eq = [](const auto& x, const auto& y) {
    return x.size() == y.size() &&
           (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0);
  };
  return eq(a.wall_s, b.wall_s) && eq(a.progress_s, b.progress_s) &&
         eq(a.interruptions, b.interruptions) && eq(a.lost_s, b.lost_s) &&
         eq(a.checkpoint_s, b.checkpoint_s) && eq(a.restart_s, b.restart_s) &&
         eq(a.waiting_s, b.waiting_s) && eq(a.spares_used, b.spares_used) &&
         eq(a.finished, b.finished) && eq(a.class_counts, b.class_counts);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void without_failures() {
  // No failures: 100 s of work in segments of 10 s; 9 checkpoints (none after the last
  // segment). Blocking writes of 1 s: wall = 100 + 9 x 1 = 109 s.
  FailureModel m = typical();
  m.class_rates_per_s = {0.0};
  m.useful_time_s = 100;
  m.checkpoint_interval_s = 10;
  m.checkpoint_write_s = 1;
  m.max_wall_s = 1e4;
  m.runs = 3;
  const LongRuns r = simulate_long_runs(m, 1);
  expect_near(r.wall_s[2], 109.0, "blocking: wall = useful + 9 writes");
  expect_near(r.checkpoint_s[2], 9.0, "blocking: 9 s of checkpoints");
  expect(r.finished[2] == 1 && r.interruptions[2] == 0, "finished, no interruptions");
  // Asynchronous, 0.2 s snapshots and 5 s background writes: each write lands 5 s into the next
  // 10 s segment, before the next snapshot: no waiting; wall = 100 + 9 x 0.2 = 101.8 s.
  m.checkpoint_async = true;
  m.checkpoint_snapshot_s = 0.2;
  m.checkpoint_write_s = 5;
  expect_near(simulate_long_runs(m, 2).wall_s[0], 101.8, "async: only the snapshots block");
  // Writes of 15 s: snapshot k waits for write k-1, which started 10 s before it was due: it
  // waits 5 s more. Snapshot 1 at 10 s (no write before): ends 10.2; write 1 lands at 25.2.
  // Segment 2 ends at 20.2, snapshot 2 waits to 25.2 and ends at 25.4; each later one likewise
  // costs 10 + 0.2 + 5 = 15.2 s per segment: 8 x 15.2 + 10.2 + 10 (last segment) = 141.8 s.
  m.checkpoint_write_s = 15;
  expect_near(simulate_long_runs(m, 2).wall_s[1], 141.8, "async: snapshots wait for writes");
}

void deterministic_for_seed_and_threads() {
  // Run r draws only from key r and writes only slot r: any thread count gives the same bits.
  const FailureModel m = typical();
  const LongRuns one = simulate_long_runs(m, 1);
  for (int threads : {2, 3, 8, 64}) {
    expect(same_bits(one, simulate_long_runs(m, threads)),
           "same bits on " + std::to_string(threads) + " threads");
  }
  expect(same_bits(one, simulate_long_runs(m, 1)), "same bits when run again");
  // A sub-range [500, 700) computed alone fills the same slots with the same bits.
  LongRuns part;
  simulate_long_runs(m, 500, 200, 4, part);
  expect(part.wall_s[500] == one.wall_s[500] && part.wall_s[699] == one.wall_s[699] &&
             part.wall_s[499] == 0.0,
         "a sub-range fills its own slots only");
  FailureModel other = m;
  other.seed = 8;
  expect(simulate_long_runs(other, 4).wall_s != one.wall_s, "another seed, other runs");
}

void goodput_within_bounds() {
  // Per run (blocking checkpoints, unlimited spares):
  // - every second of wall time is useful, lost, checkpoint, restart or waiting:
  //   wall = useful + lost + checkpoint + restart + waiting;
  // - wall >= the failure-free wall W0 = useful + (segments - 1) x write = 30 d + 719 min;
  // - each failure costs at most a segment of compute, a write and a restart:
  //   wall <= W0 + interruptions x (interval + write + restart);
  // so goodput = useful / wall is in [useful / (W0 + k (3600 + 60 + 600)), useful / W0].
  // Over runs, failures are a Poisson process in wall time: E[N] = rate x E[wall] (Wald).
  const FailureModel m = typical();
  const LongRuns r = simulate_long_runs(m, 4);
  const double w0 = m.useful_time_s + 719 * m.checkpoint_write_s;
  bool identity = true, lower = true, upper = true, done = true;
  double walls = 0.0, failures = 0.0;
  for (std::size_t i = 0; i < r.wall_s.size(); ++i) {
    const double sum =
        m.useful_time_s + r.lost_s[i] + r.checkpoint_s[i] + r.restart_s[i] + r.waiting_s[i];
    identity = identity && std::abs(sum - r.wall_s[i]) <= 1e-9 * r.wall_s[i];
    lower = lower && r.wall_s[i] >= w0 * (1 - 1e-12);
    const double k = static_cast<double>(r.interruptions[i]);
    upper = upper && r.wall_s[i] <= w0 + k * (3600 + 60 + 600) + 1e-6;
    done = done && r.finished[i] == 1;
    walls += r.wall_s[i];
    failures += k;
  }
  expect(identity, "wall = useful + lost + checkpoint + restart + waiting");
  expect(lower, "goodput <= the failure-free goodput");
  expect(upper, "each failure costs at most interval + write + restart");
  expect(done, "every run finishes");
  const double n = static_cast<double>(m.runs);
  const double rate = m.job_rate_per_s();
  const double expected = rate * walls / n;  // about 30 d / 9.8 h = 74 failures per run
  expect(std::abs(failures / n - expected) < 5 * std::sqrt(expected / n),
         "mean failures = rate x mean wall (within 5 sigma)");
}

void spares() {
  // A pool of 10 spares, 4 devices per failure: the first two failures take 8, the third the
  // last 2 and waits for replacements; later ones take none. spares_used = min(4 k, 10), and
  // runs with k >= 3 wait (replacement 2 h > restart 10 min).
  FailureModel m = typical();
  m.class_spare_devices = {4};
  m.spares = 10;
  m.replacement_s = 2 * kHour;
  m.runs = 200;
  const LongRuns r = simulate_long_runs(m, 2);
  bool used = true, waits = true;
  for (std::size_t i = 0; i < r.wall_s.size(); ++i) {
    const std::int64_t k = r.interruptions[i];
    used = used && r.spares_used[i] == std::min<std::int64_t>(4 * k, 10);
    waits = waits && (k >= 3) == (r.waiting_s[i] > 0);
  }
  expect(used, "spares_used = min(4 x failures, pool)");
  expect(waits, "a failure waits for hardware only once the pool is short");
}

void spare_devices_bounded() {
  // Robustness #13 (spares_overflow.py): 2^62 spare devices per failure overflowed the int64
  // spare count after two failures (UB; negative counts came back). class_spare_devices is now
  // at most 1e9 (and a run at most kMaxFailuresPerRun = 1e7 failures: at most 1e16 used).
  FailureModel m = typical();
  m.runs = 4;
  m.class_spare_devices = {std::int64_t{1} << 62};
  expect_throws<SpecError>([&] { m.validate(); }, "2^62 spare devices per failure are refused",
                           "class_spare_devices");
  m.class_spare_devices = {1'000'000'001};
  expect_throws<SpecError>([&] { m.validate(); }, "1e9 + 1 are refused", "[0, 1000000000]");
  m.class_spare_devices = {1'000'000'000};
  const LongRuns r = simulate_long_runs(m, 1);
  bool exact = true;
  for (std::size_t i = 0; i < r.wall_s.size(); ++i)
    exact = exact && r.spares_used[i] == r.interruptions[i] * 1'000'000'000;
  expect(exact, "1e9 per failure: spares_used = failures x 1e9 exactly, no overflow");
}

// 16 devices failing once per hour: the job fails every 225 s on average, a restart takes 600 s:
// it never finishes (failures_mc_unbounded.toml). max_wall_s sets the expected failures per run.
FailureModel never_finishes(double expected_failures) {
  FailureModel m = typical();
  m.devices = 16;
  m.class_rates_per_s = {1.0 / kHour};
  m.useful_time_s = 1e6;
  m.checkpoint_interval_s = 1e6;  // no checkpoint: 1e6 s without a failure: p = e^-4444
  m.checkpoint_write_s = 10;
  m.restart_s = 600;
  m.max_wall_s = expected_failures * 225.0;
  return m;
}

void runs_that_never_finish() {
  // Robustness #2: up front, more than 1e9 expected failures per run (rate x max_wall_s) are
  // refused; a run that does take more than kMaxFailuresPerRun = 1e7 failures stops with a
  // SpecError instead of grinding on (2.2e7 expected here: the cap is reached after about 1e7
  // failures, a fraction of a second), on any number of threads, and the others stop too.
  expect_throws<SpecError>([&] { never_finishes(2e9).validate(); },
                           "2e9 expected failures per run are refused up front", "max_wall_s");
  for (int threads : {1, 4}) {
    FailureModel m = never_finishes(2.2e7);
    m.runs = 64;
    const auto t0 = std::chrono::steady_clock::now();
    expect_throws<SpecError>(
        [&] { simulate_long_runs(m, threads); },
        "a run of more than 1e7 failures raises on " + std::to_string(threads) + " thread(s)",
        "practically never finishes");
    expect(seconds_since(t0) < 60, "... soon (the other runs stop too)");
  }
  // Just under the cap the run goes to max_wall_s and is reported unfinished.
  FailureModel m = never_finishes(1000);
  m.runs = 2;
  const LongRuns r = simulate_long_runs(m, 2);
  expect(r.finished[0] == 0 && r.wall_s[0] == m.max_wall_s, "stopped at max_wall_s, unfinished");
}

struct Stop {};

void stopping_early() {
  // Robustness #2: poll() runs on the calling thread about every poll_interval_s, between runs
  // and inside long ones; an exception from it stops every worker, and propagates once they are
  // joined. 1000 runs of ~5e6 failures each would take minutes: poll throws at its 3rd call
  // (about 30 ms in), and the call returns at once.
  for (int threads : {1, 4}) {
    FailureModel m = never_finishes(5e6);
    m.runs = 1000;
    LongRuns out;
    int calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    bool stopped = false;
    try {
      simulate_long_runs(
          m, 0, m.runs, threads, out,
          [&] {
            if (++calls == 3) throw Stop{};
          },
          0.01);
    } catch (const Stop&) {
      stopped = true;
    }
    expect(stopped && calls == 3,
           "poll's exception stops the Monte Carlo, " + std::to_string(threads) + " thread(s)");
    expect(seconds_since(t0) < 10, "... at once");
  }
  // A poll that does not throw changes nothing: the same bits as without it.
  const FailureModel m = typical();
  LongRuns polled;
  int calls = 0;
  simulate_long_runs(m, 0, m.runs, 3, polled, [&] { ++calls; }, 1e-6);
  expect(same_bits(polled, simulate_long_runs(m, 1)), "polling does not change the results");
  expect(calls > 0, "poll was called");
}

void threads_that_cannot_start() {
  // Robustness #1 (threads_abort.py): with 2000 threads asked for and too little address space
  // for their stacks (64 MiB to spare, 8 MiB a stack), std::thread threw std::system_error and
  // the process aborted. Now the threads that did start (and the calling thread) do all the
  // runs: the same bits as on one thread. (Under AddressSanitizer no limit is set, and 256
  // threads are asked for.)
  FailureModel m = typical();
  const LongRuns want = simulate_long_runs(m, 1);
#ifdef PODSIM_TEST_ASAN
  const int threads = 256;
#else
  const int threads = 2000;
#endif
  const bool ok = in_child(std::size_t{64} << 20, [&] {
    LongRuns out;
    out.resize(m.runs, 1);
    simulate_long_runs(m, 0, m.runs, threads, out);
    return same_bits(out, want);
  });
  expect(ok, "2000 threads in 64 MiB: fewer threads, same results, no abort");
}

void validation() {
  FailureModel m = typical();
  expect_throws<SpecError>([&] { simulate_long_runs(m, 0); }, "threads = 0 is refused",
                           "threads = 0");
  LongRuns out;
  expect_throws<SpecError>([&] { simulate_long_runs(m, 1990, 20, 1, out); },
                           "a range past the runs is refused", "count = 20");
  expect_throws<SpecError>([&] { simulate_long_runs(m, 0, 10, 1, out, [] {}, 0.0); },
                           "a poll interval of 0 is refused", "poll_interval_s");
  m.useful_time_s = std::nan("");
  expect_throws<SpecError>([&] { m.validate(); }, "NaN useful time is refused", "useful_time_s");
}

}  // namespace

int main() {
  without_failures();
  deterministic_for_seed_and_threads();
  goodput_within_bounds();
  spares();
  spare_devices_bounded();
  runs_that_never_finish();
  stopping_early();
  threads_that_cannot_start();
  validation();
  return summary();
}
