// Failures over a long training run: a Monte Carlo of many independent runs of one job.
//
// Model (one run):
// - Failures form a Poisson process in wall-clock time with the job's total rate
//   devices * sum(class rates) + links * link rate. They strike in every phase: compute,
//   checkpoint and restart (as in Daly 2006), so a failure during a restart starts it over.
//   The class of each failure is drawn in proportion to its rate (competing exponentials).
// - The job needs useful_time_s of failure-free compute, cut into segments of
//   checkpoint_interval_s of progress. After each segment but the last a checkpoint is taken.
//   Blocking: checkpoint_write_s of wall time; the segment is durable once it is written.
//   Asynchronous: checkpoint_snapshot_s blocks (copy to host memory), then the write runs in the
//   background for checkpoint_write_s and the segment is durable only when it lands. One staging
//   buffer: the next snapshot first waits for the previous write to land.
// - A failure loses the progress since the last durable checkpoint and costs restart_s
//   (detection + rescheduling + reload).
// - Spares: a failure of a class with spare_devices > 0 takes that many devices from a pool of
//   `spares` (negative: unlimited), with no delay while the pool lasts. The pool is not refilled
//   during the run. Once it is short, the failure waits replacement_s for new hardware before
//   the restart can finish (waits of overlapping failures run in parallel, not in series).
// - A run stops when the job is done or at max_wall_s of wall time, whichever is first (a run
//   stopped at max_wall_s is reported unfinished). A run with more than kMaxFailuresPerRun
//   failures is an error (SpecError): such a job practically never finishes.
//
// Randomness is counter-based (podsim/random.hpp): run r draws only from key r, so every run is
// independent of the others, of their order and of the number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace podsim {

// Failures one simulated run may take before simulate_long_runs gives up with a SpecError.
inline constexpr std::int64_t kMaxFailuresPerRun = 10'000'000;
// The largest class_spare_devices (keeps every spare count far inside int64).
inline constexpr std::int64_t kMaxSpareDevicesPerFailure = 1'000'000'000;

struct FailureModel {
  std::int64_t devices = 1;
  std::int64_t links = 0;
  // One entry per failure class: failures per second per device, and the spare devices one
  // failure of the class takes (0: software, network, ...; 1: a GPU; 8: a whole host).
  std::vector<double> class_rates_per_s;
  std::vector<std::int64_t> class_spare_devices;
  double link_rate_per_s = 0.0;        // per link; a link failure takes no spare device
  double useful_time_s = 0.0;          // failure-free compute time of the whole job
  double max_wall_s = 0.0;             // a run stops here, finished or not (finite, > 0)
  double checkpoint_interval_s = 0.0;  // useful progress between checkpoints
  double checkpoint_write_s = 0.0;     // time to write one checkpoint to storage
  bool checkpoint_async = false;
  double checkpoint_snapshot_s = 0.0;  // blocking part of an asynchronous checkpoint
  double restart_s = 0.0;
  std::int64_t spares = -1;  // negative: unlimited
  double replacement_s = 0.0;
  std::uint64_t seed = 0;
  std::int64_t runs = 1;

  // Throws SpecError naming the first field that is not allowed.
  void validate() const;
  // Failures per second of the whole job, every class and link included.
  double job_rate_per_s() const;
};

// Per-run results, one slot per run (struct of arrays).
struct LongRuns {
  std::vector<double> wall_s;      // wall time until done (or max_wall_s)
  std::vector<double> progress_s;  // useful progress at the end (useful_time_s if done)
  std::vector<std::int64_t> interruptions;
  std::vector<double> lost_s;        // compute redone after failures
  std::vector<double> checkpoint_s;  // blocking checkpoint time, waits for writes included
  std::vector<double> restart_s;     // restart time, interrupted restarts included
  std::vector<double> waiting_s;     // waits for replacement hardware beyond restart_s
  std::vector<std::int64_t> spares_used;
  std::vector<std::uint8_t> finished;
  std::vector<std::int64_t> class_counts;  // runs x (classes + 1), row-major; last column: links

  void resize(std::int64_t runs, std::int64_t classes);
};

// Simulates runs [first, first + count) of the model into their slots of `out` (sized for
// model.runs), on up to `threads` threads (the calling thread is one of them; if the system
// cannot start them all, fewer do the work). Results are bit-identical for any thread count.
void simulate_long_runs(const FailureModel& model, std::int64_t first, std::int64_t count,
                        int threads, LongRuns& out);

// The same, calling `poll` on the calling thread about every `poll_interval_s` seconds while
// runs are simulated (e.g. to check for Ctrl-C). An exception thrown by `poll` (or by any run)
// stops every worker; they are joined and the exception is rethrown. Slots of runs that had not
// finished are then unspecified.
void simulate_long_runs(const FailureModel& model, std::int64_t first, std::int64_t count,
                        int threads, LongRuns& out, const std::function<void()>& poll,
                        double poll_interval_s = 0.05);

// All model.runs runs.
LongRuns simulate_long_runs(const FailureModel& model, int threads);

}  // namespace podsim
